//! Reading a POST body the way the express source's JSON parser does: `application/json` and
//! `text/plain` (sendBeacon) are parsed as strict JSON (an object or an array), other types are
//! left unparsed; `gzip` and `deflate` bodies are inflated; the limit applies to the inflated
//! size, so a small compressed body cannot expand past it.

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
    /// A charset other than UTF-8 (415).
    #[error("unsupported charset \"{0}\"")]
    UnsupportedCharset(String),
    /// A `Content-Encoding` other than gzip, deflate or identity (415).
    #[error("unsupported content encoding \"{0}\"")]
    UnsupportedEncoding(String),
    /// The compressed body is corrupt (400).
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
    /// `application/json` or `text/plain`: parsed as JSON.
    Json,
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
    for param in parts {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("charset") {
            let charset = value.trim().trim_matches('"').to_ascii_lowercase();
            if charset != "utf-8" && charset != "utf8" {
                return Err(BodyError::UnsupportedCharset(charset.to_ascii_uppercase()));
            }
        }
    }
    Ok(BodyKind::Json)
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
        _ => Err(BodyError::UnsupportedEncoding(name)),
    }
}

/// Inflates `raw` per `encoding`, refusing output above `limit`.
pub fn decode(raw: Bytes, encoding: Encoding, limit: usize) -> Result<Bytes, BodyError> {
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
    };
    inflated.map(Bytes::from)
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
            Ok(BodyKind::Json)
        );
        assert_eq!(
            body_kind(&with(CONTENT_TYPE, "text/plain;charset=UTF-8")),
            Ok(BodyKind::Json)
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
            encoding(&with(http::header::CONTENT_ENCODING, "br")),
            Err(BodyError::UnsupportedEncoding("br".into()))
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
