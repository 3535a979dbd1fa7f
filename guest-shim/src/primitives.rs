//! Native primitives behind the guest's Web and Node APIs: digests and HMACs, entropy, the byte
//! encodings `Buffer` and `TextEncoder` need, and WHATWG URL parsing.
//!
//! They are the hot or fiddly parts that QuickJS would run slowly or that must match Node byte
//! for byte (SHA-256 of user data, base64 of bodies, `new URL` on every outbound request). Each
//! is a pure function of its arguments, except `randomFill`, which reads the host's secure
//! generator. The JavaScript that wraps them lives in `web/*.js` (globals) and in
//! `js/node/*.js` (Node modules bundled into flows), which reach them through the global
//! `__flowhost_native`; nothing here can touch the host's other imports.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use javy_plugin_api::javy::quickjs::{
    Array, ArrayBuffer, Ctx, Error, Exception, Object, String as JsString, TypedArray, Value,
    function::Opt, prelude::Func,
};
use sha2::Digest as _;

use crate::host;

/// Builds the object of natives that `web/*.js` and the Node modules use.
pub fn build<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>, Error> {
    let native = Object::new(ctx.clone())?;
    native.set("digest", Func::from(digest))?;
    native.set("hmac", Func::from(hmac))?;
    native.set("randomFill", Func::from(random_fill))?;
    native.set("utf8Encode", Func::from(utf8_encode))?;
    native.set("utf8Decode", Func::from(utf8_decode))?;
    native.set("utf8Length", Func::from(utf8_length))?;
    native.set("utf8Valid", Func::from(utf8_valid))?;
    native.set("latin1Decode", Func::from(latin1_decode))?;
    native.set("base64Encode", Func::from(base64_encode))?;
    native.set("base64Decode", Func::from(base64_decode))?;
    native.set("hexEncode", Func::from(hex_encode))?;
    native.set("hexDecode", Func::from(hex_decode))?;
    native.set("urlParse", Func::from(url_parse))?;
    native.set("urlSet", Func::from(url_set))?;
    native.set("domainToAscii", Func::from(domain_to_ascii))?;
    native.set("domainToUnicode", Func::from(domain_to_unicode))?;
    native.set("formDecode", Func::from(form_decode))?;
    native.set("formEncode", Func::from(form_encode))?;
    Ok(native)
}

// ------------------------------------------------------------------------------------------------
// Arguments

/// The bytes of a `Uint8Array` (a `Buffer` too), an `ArrayBuffer`, or a string's UTF-8.
fn bytes<'a>(ctx: &Ctx<'_>, value: &'a Value<'_>) -> Result<Cow<'a, [u8]>, Error> {
    if let Some(text) = value.as_string() {
        return Ok(Cow::Owned(utf8_of(text)?.into_bytes()));
    }
    if let Some(object) = value.as_object() {
        if let Some(array) = object.as_typed_array::<u8>() {
            return array
                .as_bytes()
                .map(Cow::Borrowed)
                .ok_or_else(|| detached(ctx));
        }
        if let Some(buffer) = object.as_array_buffer() {
            return buffer
                .as_bytes()
                .map(Cow::Borrowed)
                .ok_or_else(|| detached(ctx));
        }
    }
    Err(Exception::throw_type(
        ctx,
        "expected a string, a Uint8Array or an ArrayBuffer",
    ))
}

fn detached(ctx: &Ctx<'_>) -> Error {
    Exception::throw_type(ctx, "the ArrayBuffer is detached")
}

/// `bytes[start..end]` with JavaScript's clamping of missing or out-of-range bounds.
fn range(bytes: &[u8], start: Opt<f64>, end: Opt<f64>) -> &[u8] {
    let len = bytes.len();
    let clamp = |v: f64| {
        if v.is_nan() {
            0
        } else {
            v.clamp(0.0, len as f64) as usize
        }
    };
    let start = start.0.map_or(0, clamp);
    let end = end.0.map_or(len, clamp);
    if start >= end {
        &[]
    } else {
        &bytes[start..end]
    }
}

/// The UTF-8 of a JavaScript string. QuickJS hands out lone surrogates as three-byte WTF-8
/// sequences; they become U+FFFD, one per surrogate, as in Node and `TextEncoder`.
fn utf8_of(text: &JsString<'_>) -> Result<String, Error> {
    let text = text.clone().to_cstring()?;
    // Safety: `as_ptr` and `len` describe the C string QuickJS keeps alive as long as `text`.
    let raw = unsafe { std::slice::from_raw_parts(text.as_ptr().cast::<u8>(), text.len()) };
    Ok(match std::str::from_utf8(raw) {
        Ok(valid) => valid.to_owned(),
        Err(_) => repair_wtf8(raw),
    })
}

/// Replaces each encoded surrogate (`ED A0..BF xx`) with U+FFFD and anything else invalid the
/// way `from_utf8_lossy` does.
fn repair_wtf8(raw: &[u8]) -> String {
    let mut fixed = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == 0xED && i + 2 < raw.len() && (0xA0..=0xBF).contains(&raw[i + 1]) {
            fixed.extend_from_slice("\u{FFFD}".as_bytes());
            i += 3;
        } else {
            fixed.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&fixed).into_owned()
}

fn array_buffer<'js>(ctx: &Ctx<'js>, bytes: Vec<u8>) -> Result<ArrayBuffer<'js>, Error> {
    ArrayBuffer::new(ctx.clone(), bytes)
}

// ------------------------------------------------------------------------------------------------
// Digests and entropy

/// The hash functions `createHash`, `createHmac` and `crypto.subtle` offer.
#[derive(Clone, Copy)]
enum Algorithm {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    /// Node's and WebCrypto's spellings, case-insensitively.
    fn parse(name: &str) -> Option<Algorithm> {
        Some(match name.to_ascii_lowercase().as_str() {
            "md5" => Algorithm::Md5,
            "sha1" | "sha-1" => Algorithm::Sha1,
            "sha224" | "sha-224" => Algorithm::Sha224,
            "sha256" | "sha-256" => Algorithm::Sha256,
            "sha384" | "sha-384" => Algorithm::Sha384,
            "sha512" | "sha-512" => Algorithm::Sha512,
            _ => return None,
        })
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Algorithm::Md5 => md5::Md5::digest(data).to_vec(),
            Algorithm::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Algorithm::Sha224 => sha2::Sha224::digest(data).to_vec(),
            Algorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Algorithm::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Algorithm::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        use hmac::{Mac, SimpleHmac};
        fn run<D>(key: &[u8], data: &[u8]) -> Vec<u8>
        where
            D: sha2::Digest + sha2::digest::core_api::BlockSizeUser,
        {
            // HMAC accepts keys of any length, so this cannot fail.
            let mut mac = <SimpleHmac<D> as Mac>::new_from_slice(key).expect("any key length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Algorithm::Md5 => run::<md5::Md5>(key, data),
            Algorithm::Sha1 => run::<sha1::Sha1>(key, data),
            Algorithm::Sha224 => run::<sha2::Sha224>(key, data),
            Algorithm::Sha256 => run::<sha2::Sha256>(key, data),
            Algorithm::Sha384 => run::<sha2::Sha384>(key, data),
            Algorithm::Sha512 => run::<sha2::Sha512>(key, data),
        }
    }
}

fn algorithm(ctx: &Ctx<'_>, name: &JsString<'_>) -> Result<Algorithm, Error> {
    let name = name.to_string()?;
    // Node's message, which callers may match on.
    Algorithm::parse(&name)
        .ok_or_else(|| Exception::throw_message(ctx, "Digest method not supported"))
}

/// `digest(algorithm, data) -> ArrayBuffer`.
fn digest<'js>(
    ctx: Ctx<'js>,
    name: JsString<'js>,
    data: Value<'js>,
) -> Result<ArrayBuffer<'js>, Error> {
    let algorithm = algorithm(&ctx, &name)?;
    let data = bytes(&ctx, &data)?;
    array_buffer(&ctx, algorithm.digest(&data))
}

/// `hmac(algorithm, key, data) -> ArrayBuffer`.
fn hmac<'js>(
    ctx: Ctx<'js>,
    name: JsString<'js>,
    key: Value<'js>,
    data: Value<'js>,
) -> Result<ArrayBuffer<'js>, Error> {
    let algorithm = algorithm(&ctx, &name)?;
    let key = bytes(&ctx, &key)?;
    let data = bytes(&ctx, &data)?;
    array_buffer(&ctx, algorithm.hmac(&key, &data))
}

/// `randomFill(uint8Array)`: fills the view from the host's secure generator.
fn random_fill<'js>(ctx: Ctx<'js>, view: TypedArray<'js, u8>) -> Result<(), Error> {
    let raw = view.as_raw().ok_or_else(|| detached(&ctx))?;
    // Safety: `as_raw` describes the live bytes of this view; nothing else runs while we write.
    let target = unsafe { std::slice::from_raw_parts_mut(raw.ptr.as_ptr(), raw.len) };
    for chunk in target.chunks_mut(8) {
        let random = host::random_u64().to_le_bytes();
        chunk.copy_from_slice(&random[..chunk.len()]);
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Text and byte encodings, with Node's leniency

/// `utf8Encode(string) -> ArrayBuffer`.
fn utf8_encode<'js>(ctx: Ctx<'js>, text: JsString<'js>) -> Result<ArrayBuffer<'js>, Error> {
    array_buffer(&ctx, utf8_of(&text)?.into_bytes())
}

/// `utf8Length(string) -> number`: the length of `utf8Encode(string)` without building it.
fn utf8_length(text: JsString<'_>) -> Result<usize, Error> {
    Ok(utf8_of(&text)?.len())
}

/// `utf8Decode(bytes, start?, end?) -> string`; invalid sequences become U+FFFD.
fn utf8_decode<'js>(
    ctx: Ctx<'js>,
    data: Value<'js>,
    start: Opt<f64>,
    end: Opt<f64>,
) -> Result<JsString<'js>, Error> {
    let data = bytes(&ctx, &data)?;
    let text = String::from_utf8_lossy(range(&data, start, end));
    JsString::from_str(ctx, &text)
}

/// `utf8Valid(bytes) -> boolean`: whether `bytes` is well-formed UTF-8.
fn utf8_valid<'js>(ctx: Ctx<'js>, data: Value<'js>) -> Result<bool, Error> {
    Ok(std::str::from_utf8(&bytes(&ctx, &data)?).is_ok())
}

/// `latin1Decode(bytes, start?, end?) -> string`: one character per byte.
fn latin1_decode<'js>(
    ctx: Ctx<'js>,
    data: Value<'js>,
    start: Opt<f64>,
    end: Opt<f64>,
) -> Result<JsString<'js>, Error> {
    let data = bytes(&ctx, &data)?;
    let text: String = range(&data, start, end)
        .iter()
        .map(|&b| char::from(b))
        .collect();
    JsString::from_str(ctx, &text)
}

/// `base64Encode(bytes, urlSafe?, start?, end?) -> string`; the URL-safe form has no padding,
/// as Node's `base64url`.
fn base64_encode<'js>(
    ctx: Ctx<'js>,
    data: Value<'js>,
    url_safe: Opt<bool>,
    start: Opt<f64>,
    end: Opt<f64>,
) -> Result<JsString<'js>, Error> {
    let data = bytes(&ctx, &data)?;
    let data = range(&data, start, end);
    let text = if url_safe.0.unwrap_or(false) {
        URL_SAFE_NO_PAD.encode(data)
    } else {
        STANDARD.encode(data)
    };
    JsString::from_str(ctx, &text)
}

/// `base64Decode(string) -> ArrayBuffer`, as Node decodes `base64` and `base64url`: both
/// alphabets, characters outside them skipped, decoding ends at the first `=`, and leftover
/// bits that do not make a byte are dropped.
fn base64_decode<'js>(ctx: Ctx<'js>, text: JsString<'js>) -> Result<ArrayBuffer<'js>, Error> {
    let text = utf8_of(&text)?;
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 3);
    let mut bits = 0u32;
    let mut count = 0u32;
    for &c in text.as_bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => continue,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    array_buffer(&ctx, out)
}

/// `hexEncode(bytes, start?, end?) -> string`, lowercase.
fn hex_encode<'js>(
    ctx: Ctx<'js>,
    data: Value<'js>,
    start: Opt<f64>,
    end: Opt<f64>,
) -> Result<JsString<'js>, Error> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let data = bytes(&ctx, &data)?;
    let data = range(&data, start, end);
    let mut text = String::with_capacity(data.len() * 2);
    for &b in data {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    JsString::from_str(ctx, &text)
}

/// `hexDecode(string) -> ArrayBuffer`, as Node decodes `hex`: pairs of digits up to the first
/// pair that is not one; an odd last digit is dropped.
fn hex_decode<'js>(ctx: Ctx<'js>, text: JsString<'js>) -> Result<ArrayBuffer<'js>, Error> {
    let text = utf8_of(&text)?;
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(text.len() / 2);
    for pair in text.as_bytes().chunks_exact(2) {
        match (digit(pair[0]), digit(pair[1])) {
            (Some(high), Some(low)) => out.push(high << 4 | low),
            _ => break,
        }
    }
    array_buffer(&ctx, out)
}

// ------------------------------------------------------------------------------------------------
// URLs (WHATWG, through the `url` crate, which implements the same standard as Node's parser)

/// The parts of a URL in the order `web/url.js` reads them.
fn url_parts<'js>(ctx: &Ctx<'js>, url: &url::Url) -> Result<Array<'js>, Error> {
    use url::quirks;
    let parts = [
        quirks::href(url),
        &quirks::origin(url),
        quirks::protocol(url),
        quirks::username(url),
        quirks::password(url),
        quirks::host(url),
        quirks::hostname(url),
        quirks::port(url),
        quirks::pathname(url),
        quirks::search(url),
        quirks::hash(url),
    ];
    let array = Array::new(ctx.clone())?;
    for (i, part) in parts.into_iter().enumerate() {
        array.set(i, part)?;
    }
    Ok(array)
}

/// `urlParse(input, base?) -> parts | null`.
fn url_parse<'js>(
    ctx: Ctx<'js>,
    input: JsString<'js>,
    base: Opt<JsString<'js>>,
) -> Result<Value<'js>, Error> {
    let input = utf8_of(&input)?;
    let parsed = match base.0 {
        Some(base) => match url::Url::parse(&utf8_of(&base)?) {
            Ok(base) => base.join(&input),
            Err(_) => return Ok(Value::new_null(ctx)),
        },
        None => url::Url::parse(&input),
    };
    match parsed {
        Ok(url) => Ok(url_parts(&ctx, &url)?.into_value()),
        Err(_) => Ok(Value::new_null(ctx)),
    }
}

/// `urlSet(href, part, value) -> parts | null`: the URL after one of the standard's setters;
/// null when `href` cannot be replaced by `value` (the `href` setter throws then).
fn url_set<'js>(
    ctx: Ctx<'js>,
    href: JsString<'js>,
    part: JsString<'js>,
    value: JsString<'js>,
) -> Result<Value<'js>, Error> {
    use url::quirks;
    let Ok(mut url) = url::Url::parse(&utf8_of(&href)?) else {
        return Ok(Value::new_null(ctx));
    };
    let value = utf8_of(&value)?;
    // The other setters ignore values they cannot use, as the standard says.
    match part.to_string()?.as_str() {
        "href" => {
            if quirks::set_href(&mut url, &value).is_err() {
                return Ok(Value::new_null(ctx));
            }
        }
        "protocol" => drop(quirks::set_protocol(&mut url, &value)),
        "username" => drop(quirks::set_username(&mut url, &value)),
        "password" => drop(quirks::set_password(&mut url, &value)),
        "host" => drop(quirks::set_host(&mut url, &value)),
        "hostname" => drop(quirks::set_hostname(&mut url, &value)),
        "port" => drop(quirks::set_port(&mut url, &value)),
        "pathname" => quirks::set_pathname(&mut url, &value),
        "search" => quirks::set_search(&mut url, &value),
        "hash" => quirks::set_hash(&mut url, &value),
        other => {
            return Err(Exception::throw_type(
                &ctx,
                &format!("no URL part {other:?}"),
            ));
        }
    }
    Ok(url_parts(&ctx, &url)?.into_value())
}

/// `domainToAscii(domain) -> string`, empty when the domain is invalid (as `url.domainToASCII`).
fn domain_to_ascii<'js>(ctx: Ctx<'js>, domain: JsString<'js>) -> Result<JsString<'js>, Error> {
    JsString::from_str(ctx, &url::quirks::domain_to_ascii(&utf8_of(&domain)?))
}

/// `domainToUnicode(domain) -> string`, empty when the domain is invalid.
fn domain_to_unicode<'js>(ctx: Ctx<'js>, domain: JsString<'js>) -> Result<JsString<'js>, Error> {
    JsString::from_str(ctx, &url::quirks::domain_to_unicode(&utf8_of(&domain)?))
}

/// `formDecode(text) -> [name, value, name, value, …]`: `application/x-www-form-urlencoded`
/// parsing, as `URLSearchParams` does it.
fn form_decode<'js>(ctx: Ctx<'js>, text: JsString<'js>) -> Result<Array<'js>, Error> {
    let text = utf8_of(&text)?;
    let array = Array::new(ctx.clone())?;
    let mut i = 0;
    for (name, value) in form_urlencoded::parse(text.as_bytes()) {
        array.set(i, name.as_ref())?;
        array.set(i + 1, value.as_ref())?;
        i += 2;
    }
    Ok(array)
}

/// `formEncode([name, value, …]) -> string`: the serialisation `URLSearchParams` uses.
fn form_encode<'js>(ctx: Ctx<'js>, pairs: Array<'js>) -> Result<JsString<'js>, Error> {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    let mut i = 0;
    while i + 1 < pairs.len() {
        let name: JsString = pairs.get(i)?;
        let value: JsString = pairs.get(i + 1)?;
        serializer.append_pair(&utf8_of(&name)?, &utf8_of(&value)?);
        i += 2;
    }
    JsString::from_str(ctx, &serializer.finish())
}
