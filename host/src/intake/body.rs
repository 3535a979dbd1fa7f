//! Reading a POST body the way the express source's JSON parser does: `application/json` and
//! `text/plain` (sendBeacon) are parsed as strict JSON (an object or an array), other types are
//! left unparsed; `gzip`, `deflate` and `br` bodies are decompressed, and UTF-16 bodies turned
//! into UTF-8 before parsing. The limit applies to the decompressed size, so a small compressed
//! body cannot expand past it.

use std::io::Read;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::Body;
use http_body_util::BodyExt;
use serde_json::Value;

/// The express source's body limit: 1 MB (body-parser's `1mb`).
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// Why a body was refused; each maps to the status and message the client gets.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BodyError {
    /// Larger than the limit, declared or as read (413).
    #[error("request entity too large")]
    TooLarge,
    /// The client did not send the whole body in time (408).
    #[error("request body timed out")]
    Timeout,
    /// The connection failed while the body was read (400).
    #[error("request aborted")]
    Aborted,
    /// A charset other than UTF-8 or UTF-16 (415).
    #[error("unsupported charset \"{0}\"")]
    UnsupportedCharset(String),
    /// A `Content-Encoding` other than gzip, deflate, br or identity (415).
    #[error("unsupported content encoding \"{0}\"")]
    UnsupportedEncoding(String),
    /// The compressed body is corrupt, or the text is not valid in its charset (400).
    #[error("invalid {0} body: {1}")]
    BadEncoding(&'static str, String),
    /// Not JSON (400).
    #[error("Invalid JSON: {0}")]
    Malformed(String),
    /// JSON, but not an object or an array (400).
    #[error("Invalid JSON: the body must be an object or an array")]
    NotObject,
}

impl BodyError {
    /// The HTTP status this refusal is answered with.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedCharset(_) | Self::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::Aborted | Self::BadEncoding(..) | Self::Malformed(_) | Self::NotObject => {
                StatusCode::BAD_REQUEST
            }
        }
    }

    /// A short bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge => "body_too_large",
            Self::Timeout => "body_timeout",
            Self::Aborted => "body_aborted",
            Self::UnsupportedCharset(_) => "unsupported_charset",
            Self::UnsupportedEncoding(_) | Self::BadEncoding(..) => "bad_encoding",
            Self::Malformed(_) | Self::NotObject => "bad_json",
        }
    }
}

/// What the `Content-Type` of a POST says about its body.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyKind {
    /// `application/json` or `text/plain`: parsed as JSON, from text in this charset.
    Json(Charset),
    /// No `Content-Type` at all.
    Missing,
    /// Any other type (a form post, say): not parsed.
    Other(String),
}

/// Classifies a request by its `Content-Type`, and checks the charset of a JSON one.
pub fn body_kind(headers: &HeaderMap) -> Result<BodyKind, BodyError> {
    let Some(value) = headers.get(http::header::CONTENT_TYPE) else {
        return Ok(BodyKind::Missing);
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    if essence != "application/json" && essence != "text/plain" {
        return Ok(BodyKind::Other(essence));
    }
    let mut charset = Charset::Utf8;
    for param in parts {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("charset") {
            charset = Charset::parse(value.trim().trim_matches('"'))?;
        }
    }
    Ok(BodyKind::Json(charset))
}

/// The charsets a JSON body may be declared in: UTF-8 and UTF-16, the ones body-parser decodes
/// that clients send. UTF-32 and the rest get 415 with body-parser's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// UTF-8, also when no charset is given.
    Utf8,
    /// UTF-16, little-endian.
    Utf16Le,
    /// UTF-16, big-endian.
    Utf16Be,
    /// UTF-16 in the byte order its byte order mark gives; without one, the order the first
    /// characters suggest (JSON starts with ASCII), else little-endian, as iconv-lite decides.
    Utf16,
}

impl Charset {
    /// Reads a `charset` parameter, refusing one that is not supported.
    fn parse(name: &str) -> Result<Self, BodyError> {
        match name.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Ok(Self::Utf8),
            "utf-16le" => Ok(Self::Utf16Le),
            "utf-16be" => Ok(Self::Utf16Be),
            "utf-16" => Ok(Self::Utf16),
            _ => Err(BodyError::UnsupportedCharset(name.to_ascii_uppercase())),
        }
    }
}

/// Reads the whole body within `limit` bytes and `timeout`, refusing a declared
/// `Content-Length` above the limit before reading anything.
pub async fn read_limited<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
{
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }

    let read = async {
        let mut body = std::pin::pin!(body);
        let mut buffer = BytesMut::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| BodyError::Aborted)?;
            if let Ok(data) = frame.into_data() {
                if buffer.len() + data.len() > limit {
                    return Err(BodyError::TooLarge);
                }
                buffer.extend_from_slice(&data);
            }
        }
        Ok(buffer.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| BodyError::Timeout)?
}

/// The `Content-Encoding` a body arrived in, checked before it is read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Encoding {
    /// As is.
    Identity,
    /// gzip.
    Gzip,
    /// zlib-wrapped deflate (raw deflate is accepted too).
    Deflate,
    /// Brotli.
    Brotli,
}

/// Reads `Content-Encoding`.
pub fn encoding(headers: &HeaderMap) -> Result<Encoding, BodyError> {
    let Some(value) = headers.get(http::header::CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let name = String::from_utf8_lossy(value.as_bytes())
        .trim()
        .to_ascii_lowercase();
    match name.as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        "deflate" => Ok(Encoding::Deflate),
        "br" => Ok(Encoding::Brotli),
        _ => Err(BodyError::UnsupportedEncoding(name)),
    }
}

/// Decompresses `raw` per `encoding`, refusing output above `limit`.
pub fn decode(raw: Bytes, encoding: Encoding, limit: usize) -> Result<Bytes, BodyError> {
    // Reading stops one byte past the limit, so a bomb costs at most `limit` bytes of output
    // and the work to produce them.
    fn inflate(reader: impl Read, limit: usize) -> std::io::Result<Result<Vec<u8>, BodyError>> {
        let mut out = Vec::new();
        reader.take(limit as u64 + 1).read_to_end(&mut out)?;
        Ok(if out.len() > limit {
            Err(BodyError::TooLarge)
        } else {
            Ok(out)
        })
    }
    let inflated = match encoding {
        Encoding::Identity => return Ok(raw),
        Encoding::Gzip => inflate(flate2::read::MultiGzDecoder::new(&raw[..]), limit)
            .map_err(|e| BodyError::BadEncoding("gzip", e.to_string()))?,
        Encoding::Deflate => match inflate(flate2::read::ZlibDecoder::new(&raw[..]), limit) {
            Ok(result) => result,
            // Some clients send raw deflate without the zlib wrapper.
            Err(_) => inflate(flate2::read::DeflateDecoder::new(&raw[..]), limit)
                .map_err(|e| BodyError::BadEncoding("deflate", e.to_string()))?,
        },
        Encoding::Brotli => inflate(brotli_reader(&raw), limit)
            .map_err(|e| BodyError::BadEncoding("br", e.to_string()))?,
    };
    inflated.map(Bytes::from)
}

/// Input buffer of the brotli decoder; the body is in memory already, so its size only sets
/// how much is handed over per step. Arbitrary.
const BROTLI_BUFFER: usize = 8 * 1024;

/// A brotli decoder over `raw` that accepts what Node's zlib accepts: windows of at most
/// 16 MiB, not the large-window extension (up to 1 GiB). The window is freed when decoding
/// ends, and decoding runs on the request's task without yielding, so however many clients
/// send brotli, at most one window per runtime worker exists at a time.
fn brotli_reader(raw: &[u8]) -> impl Read + '_ {
    use brotli_decompressor::BrotliDecoderParameter::BROTLI_DECODER_PARAM_LARGE_WINDOW;
    let mut reader = brotli_decompressor::Decompressor::new(raw, BROTLI_BUFFER);
    // Before the first read the parameter is always accepted.
    reader.set_parameter(BROTLI_DECODER_PARAM_LARGE_WINDOW, 0);
    reader
}

/// Turns a body in `charset` into UTF-8 for the JSON parser, without a leading byte order mark
/// (body-parser drops it too). Text that is not valid in its charset is refused; UTF-8 is
/// checked by the parser.
pub fn to_utf8(bytes: Bytes, charset: Charset) -> Result<Bytes, BodyError> {
    const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
    let big_endian = match charset {
        Charset::Utf8 if bytes.starts_with(UTF8_BOM) => return Ok(bytes.slice(UTF8_BOM.len()..)),
        Charset::Utf8 => return Ok(bytes),
        Charset::Utf16Le => false,
        Charset::Utf16Be => true,
        Charset::Utf16 => utf16_is_big_endian(&bytes),
    };
    let name = if big_endian { "utf-16be" } else { "utf-16le" };
    if !bytes.len().is_multiple_of(2) {
        return Err(BodyError::BadEncoding(
            name,
            format!(
                "{} bytes is not a whole number of UTF-16 code units",
                bytes.len()
            ),
        ));
    }
    let units = bytes.chunks_exact(2).map(|pair| {
        let pair = [pair[0], pair[1]];
        if big_endian {
            u16::from_be_bytes(pair)
        } else {
            u16::from_le_bytes(pair)
        }
    });
    let mut text = String::with_capacity(bytes.len());
    let mut offset = 0;
    for decoded in char::decode_utf16(units) {
        match decoded {
            Ok('\u{FEFF}') if offset == 0 => {}
            Ok(c) => text.push(c),
            Err(e) => {
                let surrogate = e.unpaired_surrogate();
                let reason = format!("unpaired surrogate {surrogate:#06x} at byte {offset}");
                return Err(BodyError::BadEncoding(name, reason));
            }
        }
        offset += 2 * decoded.map_or(1, char::len_utf16);
    }
    Ok(Bytes::from(text))
}

/// The byte order of UTF-16 without a declared one: the byte order mark's, else the order in
/// which the first code units read as ASCII (JSON text starts with ASCII), else little-endian.
fn utf16_is_big_endian(bytes: &[u8]) -> bool {
    match bytes {
        [0xFE, 0xFF, ..] => return true,
        [0xFF, 0xFE, ..] => return false,
        _ => {}
    }
    let (mut little, mut big) = (0, 0);
    for pair in bytes.chunks_exact(2).take(50) {
        match (pair[0], pair[1]) {
            (0, 0) => {}
            (_, 0) => little += 1,
            (0, _) => big += 1,
            _ => {}
        }
    }
    big > little
}

/// Parses a JSON body strictly: an empty body is `{}`, anything but an object or an array is
/// refused.
pub fn parse_json(bytes: &[u8]) -> Result<Value, BodyError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => return Ok(Value::Object(Default::default())),
        Some(b'{') | Some(b'[') => {}
        Some(_) => {
            // Still report malformed JSON as such; only well-formed scalars are "not an object".
            return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Ok(_) => Err(BodyError::NotObject),
                Err(e) => Err(BodyError::Malformed(e.to_string())),
            };
        }
    }
    serde_json::from_slice(bytes).map_err(|e| BodyError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http_body_util::Full;
    use std::io::Write;

    fn with(name: http::header::HeaderName, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn content_types() {
        use http::header::CONTENT_TYPE;
        assert_eq!(body_kind(&HeaderMap::new()), Ok(BodyKind::Missing));
        assert_eq!(
            body_kind(&with(CONTENT_TYPE, "application/json")),
            Ok(BodyKind::Json(Charset::Utf8))
        );
        assert_eq!(
            body_kind(&with(CONTENT_TYPE, "text/plain;charset=UTF-8")),
            Ok(BodyKind::Json(Charset::Utf8))
        );
        assert_eq!(
            body_kind(&with(
                CONTENT_TYPE,
                "application/json; charset=\"UTF-16LE\""
            )),
            Ok(BodyKind::Json(Charset::Utf16Le))
        );
        assert_eq!(
            body_kind(&with(CONTENT_TYPE, "application/json; charset=utf-16")),
            Ok(BodyKind::Json(Charset::Utf16))
        );
        assert_eq!(
            body_kind(&with(CONTENT_TYPE, "application/json; charset=utf-32")),
            Err(BodyError::UnsupportedCharset("UTF-32".into()))
        );
        assert_eq!(
            body_kind(&with(CONTENT_TYPE, "application/x-www-form-urlencoded")),
            Ok(BodyKind::Other("application/x-www-form-urlencoded".into()))
        );
        assert_eq!(
            body_kind(&with(CONTENT_TYPE, "application/json; charset=latin1")),
            Err(BodyError::UnsupportedCharset("LATIN1".into()))
        );
    }

    #[test]
    fn strict_json() {
        assert_eq!(parse_json(b""), Ok(serde_json::json!({})));
        assert_eq!(parse_json(b" [1] "), Ok(serde_json::json!([1])));
        assert_eq!(parse_json(b"\"page view\""), Err(BodyError::NotObject));
        assert!(matches!(
            parse_json(b"{\"name\":\"page view\","),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(parse_json(b"nope"), Err(BodyError::Malformed(_))));
    }

    #[test]
    fn gzip_and_deflate_inflate_within_the_limit() {
        let json = br#"{"name":"page view"}"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(json).unwrap();
        let gz = Bytes::from(gz.finish().unwrap());
        assert_eq!(decode(gz.clone(), Encoding::Gzip, 1024).unwrap(), &json[..]);
        assert_eq!(decode(gz, Encoding::Gzip, 5), Err(BodyError::TooLarge));

        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(json).unwrap();
        let z = Bytes::from(z.finish().unwrap());
        assert_eq!(decode(z, Encoding::Deflate, 1024).unwrap(), &json[..]);

        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(json).unwrap();
        let raw = Bytes::from(raw.finish().unwrap());
        assert_eq!(decode(raw, Encoding::Deflate, 1024).unwrap(), &json[..]);

        assert!(matches!(
            decode(Bytes::from_static(b"not gzip"), Encoding::Gzip, 1024),
            Err(BodyError::BadEncoding("gzip", _))
        ));
        assert_eq!(
            encoding(&with(http::header::CONTENT_ENCODING, "zstd")),
            Err(BodyError::UnsupportedEncoding("zstd".into()))
        );
    }

    fn brotli(bytes: &[u8]) -> Bytes {
        let mut out = Vec::new();
        let params = brotli::enc::BrotliEncoderParams::default();
        brotli::BrotliCompress(&mut &bytes[..], &mut out, &params).unwrap();
        Bytes::from(out)
    }

    #[test]
    fn brotli_decompresses_within_the_limit() {
        assert_eq!(
            encoding(&with(http::header::CONTENT_ENCODING, "br")),
            Ok(Encoding::Brotli)
        );
        let json = br#"{"name":"page view"}"#;
        assert_eq!(
            decode(brotli(json), Encoding::Brotli, 1024).unwrap(),
            &json[..]
        );

        // 64 MiB of spaces compress to a few hundred bytes; decoding stops past the limit.
        let bomb = brotli(&vec![b' '; 64 << 20]);
        assert!(bomb.len() < 1024, "{} bytes", bomb.len());
        assert_eq!(
            decode(bomb, Encoding::Brotli, DEFAULT_BODY_LIMIT),
            Err(BodyError::TooLarge)
        );

        assert!(matches!(
            decode(Bytes::from_static(b"not brotli"), Encoding::Brotli, 1024),
            Err(BodyError::BadEncoding("br", _))
        ));
    }

    #[test]
    fn brotli_large_windows_are_refused_as_node_refuses_them() {
        let params = brotli::enc::BrotliEncoderParams {
            large_window: true,
            lgwin: 26,
            ..Default::default()
        };
        let mut large = Vec::new();
        let input = vec![b'x'; 1 << 16];
        brotli::BrotliCompress(&mut &input[..], &mut large, &params).unwrap();
        assert!(matches!(
            decode(Bytes::from(large), Encoding::Brotli, DEFAULT_BODY_LIMIT),
            Err(BodyError::BadEncoding("br", _))
        ));
    }

    fn utf16(text: &str, big_endian: bool, bom: bool) -> Bytes {
        let bom = bom.then_some('\u{FEFF}');
        let units = bom.into_iter().chain(text.chars()).collect::<String>();
        let bytes: Vec<u8> = units
            .encode_utf16()
            .flat_map(|u| {
                if big_endian {
                    u.to_be_bytes()
                } else {
                    u.to_le_bytes()
                }
            })
            .collect();
        Bytes::from(bytes)
    }

    #[test]
    fn utf16_bodies_become_utf8_without_their_byte_order_mark() {
        let json = r#"{"name":"page view","data":{"title":"Grüße 🌍"}}"#;
        for (bytes, charset) in [
            (utf16(json, false, false), Charset::Utf16Le),
            (utf16(json, true, false), Charset::Utf16Be),
            (utf16(json, false, true), Charset::Utf16Le),
            (utf16(json, false, true), Charset::Utf16),
            (utf16(json, true, true), Charset::Utf16),
            // No byte order mark: the ASCII "{" decides.
            (utf16(json, true, false), Charset::Utf16),
            (utf16(json, false, false), Charset::Utf16),
        ] {
            assert_eq!(
                to_utf8(bytes, charset).unwrap(),
                json.as_bytes(),
                "{charset:?}"
            );
        }

        // body-parser drops a UTF-8 byte order mark as well.
        let with_bom = Bytes::from([&b"\xEF\xBB\xBF"[..], json.as_bytes()].concat());
        assert_eq!(to_utf8(with_bom, Charset::Utf8).unwrap(), json.as_bytes());
    }

    #[test]
    fn malformed_utf16_is_refused_with_the_place() {
        assert_eq!(
            to_utf8(Bytes::from_static(b"{\0}"), Charset::Utf16Le),
            Err(BodyError::BadEncoding(
                "utf-16le",
                "3 bytes is not a whole number of UTF-16 code units".into()
            ))
        );
        // "{" then a lone high surrogate, after a surrogate pair.
        let mut bytes = utf16("{🌍", false, false).to_vec();
        bytes.extend_from_slice(&0xD800u16.to_le_bytes());
        assert_eq!(
            to_utf8(Bytes::from(bytes), Charset::Utf16Le),
            Err(BodyError::BadEncoding(
                "utf-16le",
                "unpaired surrogate 0xd800 at byte 6".into()
            ))
        );
    }

    #[tokio::test]
    async fn declared_and_actual_length_limits() {
        let big = with(http::header::CONTENT_LENGTH, "2000000");
        let result = read_limited(
            &big,
            Full::new(Bytes::from_static(b"{}")),
            DEFAULT_BODY_LIMIT,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(result, Err(BodyError::TooLarge));

        let result = read_limited(
            &HeaderMap::new(),
            Full::new(Bytes::from(vec![b' '; 11])),
            10,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(result, Err(BodyError::TooLarge));
    }
}
