//! The responses the intake and the runner send, built once here so their headers agree.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::Value;

use super::delivery::{Answer, AnswerBody};

/// Every response flowhost sends.
pub type HttpResponse = Response<Full<Bytes>>;

/// `application/json; charset=utf-8`, as Express sends it.
pub const JSON_UTF8: HeaderValue = HeaderValue::from_static("application/json; charset=utf-8");

/// A JSON response.
pub fn json(status: StatusCode, body: &Value) -> HttpResponse {
    with_body(status, JSON_UTF8, Bytes::from(body.to_string()))
}

/// A response with `content_type` and `body`.
pub fn with_body(status: StatusCode, content_type: HeaderValue, body: Bytes) -> HttpResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

/// A response without a body.
pub fn empty(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// The transparent GIF of a pixel request.
pub fn gif() -> HttpResponse {
    let mut response = with_body(
        StatusCode::OK,
        HeaderValue::from_static("image/gif"),
        Bytes::from_static(super::pixel::TRANSPARENT_GIF),
    );
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    response
}

/// Marks a response a step chose (`env.respond`): its headers win over the app-wide ones, as
/// a step's `res.set` comes after the express source's middleware.
#[derive(Debug, Clone, Copy)]
pub struct StepAnswer;

/// The answer a step chose, sent as the express source sends it: a string as it is (HTML unless
/// the step set a `Content-Type`, as Express's `res.send` does), bytes as they are
/// (`application/octet-stream` unless set), any other value as JSON. 204 and 304 carry no body.
pub fn answer(answer: Answer) -> HttpResponse {
    let (body, content_type) = match answer.body {
        _ if matches!(answer.status.as_u16(), 204 | 304) => (Bytes::new(), None),
        AnswerBody::Empty => (Bytes::new(), None),
        AnswerBody::Text(text) => (
            Bytes::from(text),
            Some(HeaderValue::from_static("text/html; charset=utf-8")),
        ),
        AnswerBody::Bytes(bytes) => (
            Bytes::from(bytes),
            Some(HeaderValue::from_static("application/octet-stream")),
        ),
        AnswerBody::Json(value) => (Bytes::from(value.to_string()), Some(JSON_UTF8)),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    for (name, value) in answer.headers {
        headers.append(name, value);
    }
    if let Some(content_type) = content_type
        && !headers.contains_key(CONTENT_TYPE)
    {
        headers.insert(CONTENT_TYPE, content_type);
    }
    response.extensions_mut().insert(StepAnswer);
    response
}

/// Express's default error page (`finalhandler`), e.g. `Cannot PUT /collect` with 404.
pub fn html_error(status: StatusCode, message: &str) -> HttpResponse {
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Error</title>\n\
         </head>\n<body>\n<pre>{}</pre>\n</body>\n</html>\n",
        escape_html(message)
    );
    let mut response = with_body(
        status,
        HeaderValue::from_static("text/html; charset=utf-8"),
        Bytes::from(body),
    );
    response.headers_mut().insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'"),
    );
    response
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Milliseconds since the Unix epoch, as `Date.now()`.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_answers_get_express_content_types_unless_they_set_one() {
        let text = answer(Answer {
            status: StatusCode::CREATED,
            headers: vec![],
            body: AnswerBody::Text("hi".into()),
        });
        assert_eq!(text.status(), StatusCode::CREATED);
        assert_eq!(text.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(text.extensions().get::<StepAnswer>().is_some());

        let own_type = answer(Answer {
            status: StatusCode::OK,
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static("image/png"))],
            body: AnswerBody::Bytes(vec![1, 2]),
        });
        assert_eq!(own_type.headers()[CONTENT_TYPE], "image/png");

        let no_content = answer(Answer {
            status: StatusCode::NO_CONTENT,
            headers: vec![],
            body: AnswerBody::Json(serde_json::json!({"x": 1})),
        });
        assert_eq!(
            http_body::Body::size_hint(no_content.body()).exact(),
            Some(0)
        );
        assert!(no_content.headers().get(CONTENT_TYPE).is_none());
    }

    #[test]
    fn express_error_page_is_byte_for_byte() {
        let response = html_error(StatusCode::BAD_REQUEST, "Bad Request");
        let body = response.body().clone();
        let len = http_body::Body::size_hint(&body).exact();
        assert_eq!(len, Some(138), "the 400 page Express sends is 138 bytes");
        let response = html_error(StatusCode::NOT_FOUND, "Cannot GET /<x>");
        let bytes =
            futures::executor::block_on(http_body_util::BodyExt::collect(response.into_body()))
                .unwrap()
                .to_bytes();
        assert!(String::from_utf8_lossy(&bytes).contains("<pre>Cannot GET /&lt;x&gt;</pre>"));
    }
}
