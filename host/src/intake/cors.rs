//! CORS as the express source configures it: the `cors` npm middleware, app-wide, with the
//! source's `cors` setting as its options (`true` = defaults, `false` = off, or an object with
//! `origin`, `methods`, `headers`, `credentials`, `maxAge`).

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use serde_json::Value;

/// Which origins are allowed.
#[derive(Debug, Clone, PartialEq)]
enum Origin {
    /// `Access-Control-Allow-Origin: *`.
    Any,
    /// One fixed origin, sent as is (with `Vary: Origin`).
    Fixed(String),
    /// The request's `Origin` echoed when listed (with `Vary: Origin`).
    List(Vec<String>),
    /// The request's `Origin` always echoed (`origin: true`).
    Reflect,
}

/// The CORS headers of one source.
#[derive(Debug, Clone, PartialEq)]
pub struct CorsPolicy {
    origin: Origin,
    methods: String,
    /// `None` reflects `Access-Control-Request-Headers`.
    allowed_headers: Option<String>,
    exposed_headers: Option<String>,
    credentials: bool,
    max_age: Option<String>,
}

/// The `cors` middleware's default for `Access-Control-Allow-Methods`.
const DEFAULT_METHODS: &str = "GET,HEAD,PUT,PATCH,POST,DELETE";

impl CorsPolicy {
    /// The policy for a `cors` setting; `None` when CORS is off (`false`).
    pub fn from_setting(setting: Option<&Value>) -> Result<Option<Self>, String> {
        let options = match setting {
            None | Some(Value::Bool(true)) | Some(Value::Null) => return Ok(Some(Self::default())),
            Some(Value::Bool(false)) => return Ok(None),
            Some(Value::Object(options)) => options,
            Some(other) => {
                return Err(format!(
                    "`cors` must be true, false or an object, not {other}"
                ));
            }
        };
        let list = |key: &str| -> Result<Option<String>, String> {
            match options.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) => Ok(s.clone()),
                        other => Err(format!("`cors.{key}` entries must be strings, not {other}")),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|items| Some(items.join(","))),
                Some(other) => Err(format!(
                    "`cors.{key}` must be a string or a list of strings, not {other}"
                )),
            }
        };

        let origin = match options.get("origin") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => Origin::Any,
            Some(Value::String(s)) if s.is_empty() || s == "*" => Origin::Any,
            Some(Value::String(s)) => Origin::Fixed(s.clone()),
            Some(Value::Bool(true)) => Origin::Reflect,
            Some(Value::Array(items)) => Origin::List(
                items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) => Ok(s.clone()),
                        other => Err(format!(
                            "`cors.origin` entries must be strings, not {other}"
                        )),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(other) => {
                return Err(format!(
                    "`cors.origin` must be a string, a list of strings or a boolean, not {other}"
                ));
            }
        };
        let max_age = match options.get("maxAge") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::String(_)) => None,
            Some(other) => return Err(format!("`cors.maxAge` must be seconds, not {other}")),
        };
        Ok(Some(Self {
            origin,
            methods: list("methods")?.unwrap_or_else(|| DEFAULT_METHODS.to_string()),
            // The middleware reads `allowedHeaders`, and `headers` as its alias.
            allowed_headers: match list("allowedHeaders")? {
                Some(headers) => Some(headers),
                None => list("headers")?,
            },
            exposed_headers: list("exposedHeaders")?,
            credentials: options.get("credentials") == Some(&Value::Bool(true)),
            max_age,
        }))
    }

    /// Headers of an ordinary (non-preflight) response.
    pub fn apply_simple(&self, request: &HeaderMap, response: &mut HeaderMap) {
        self.apply_origin(request, response);
        if self.credentials {
            response.insert(
                HeaderName::from_static("access-control-allow-credentials"),
                HeaderValue::from_static("true"),
            );
        }
        self.apply_exposed(response);
    }

    /// Headers of the 204 answer to a preflight (`OPTIONS`).
    pub fn apply_preflight(&self, request: &HeaderMap, response: &mut HeaderMap) {
        self.apply_origin(request, response);
        if self.credentials {
            response.insert(
                HeaderName::from_static("access-control-allow-credentials"),
                HeaderValue::from_static("true"),
            );
        }
        insert(response, "access-control-allow-methods", &self.methods);
        match &self.allowed_headers {
            Some(headers) => {
                if !headers.is_empty() {
                    insert(response, "access-control-allow-headers", headers);
                }
            }
            None => {
                vary(response, "Access-Control-Request-Headers");
                if let Some(requested) = request
                    .get("access-control-request-headers")
                    .filter(|v| !v.is_empty())
                {
                    response.insert(
                        HeaderName::from_static("access-control-allow-headers"),
                        requested.clone(),
                    );
                }
            }
        }
        if let Some(max_age) = &self.max_age {
            insert(response, "access-control-max-age", max_age);
        }
        self.apply_exposed(response);
    }

    fn apply_origin(&self, request: &HeaderMap, response: &mut HeaderMap) {
        let request_origin = request.get(http::header::ORIGIN);
        match &self.origin {
            Origin::Any => {
                response.insert(
                    http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
            }
            Origin::Fixed(origin) => {
                insert(response, "access-control-allow-origin", origin);
                vary(response, "Origin");
            }
            Origin::List(allowed) => {
                if let Some(origin) = request_origin
                    && allowed.iter().any(|a| a.as_bytes() == origin.as_bytes())
                {
                    response.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                }
                vary(response, "Origin");
            }
            Origin::Reflect => {
                if let Some(origin) = request_origin.filter(|o| !o.is_empty()) {
                    response.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                }
                vary(response, "Origin");
            }
        }
    }

    fn apply_exposed(&self, response: &mut HeaderMap) {
        if let Some(exposed) = self.exposed_headers.as_deref().filter(|e| !e.is_empty()) {
            insert(response, "access-control-expose-headers", exposed);
        }
    }
}

impl Default for CorsPolicy {
    fn default() -> Self {
        Self {
            origin: Origin::Any,
            methods: DEFAULT_METHODS.to_string(),
            allowed_headers: None,
            exposed_headers: None,
            credentials: false,
            max_age: None,
        }
    }
}

fn insert(response: &mut HeaderMap, name: &'static str, value: &str) {
    // Values come from the flow's settings; one that is not a valid header value is skipped
    // rather than failing every response.
    if let Ok(value) = HeaderValue::from_str(value) {
        response.insert(HeaderName::from_static(name), value);
    }
}

/// Appends `field` to `Vary`, as the `vary` npm package does.
fn vary(response: &mut HeaderMap, field: &str) {
    let current = response
        .get(http::header::VARY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if current
        .split(',')
        .any(|f| f.trim().eq_ignore_ascii_case(field) || f.trim() == "*")
    {
        return;
    }
    let value = if current.is_empty() {
        field.to_string()
    } else {
        format!("{current}, {field}")
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.insert(http::header::VARY, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        map
    }

    fn get<'a>(map: &'a HeaderMap, name: &str) -> Option<&'a str> {
        map.get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn default_policy_allows_any_origin_and_reflects_requested_headers() {
        let policy = CorsPolicy::from_setting(Some(&json!(true)))
            .unwrap()
            .unwrap();
        let request = headers(&[("access-control-request-headers", "content-type,x-a")]);
        let mut response = HeaderMap::new();
        policy.apply_preflight(&request, &mut response);
        assert_eq!(get(&response, "access-control-allow-origin"), Some("*"));
        assert_eq!(
            get(&response, "access-control-allow-methods"),
            Some("GET,HEAD,PUT,PATCH,POST,DELETE")
        );
        assert_eq!(
            get(&response, "access-control-allow-headers"),
            Some("content-type,x-a")
        );
        assert_eq!(
            get(&response, "vary"),
            Some("Access-Control-Request-Headers")
        );

        let mut simple = HeaderMap::new();
        policy.apply_simple(&request, &mut simple);
        assert_eq!(get(&simple, "access-control-allow-origin"), Some("*"));
        assert_eq!(get(&simple, "vary"), None);
    }

    #[test]
    fn origin_list_echoes_listed_origins_only() {
        let policy = CorsPolicy::from_setting(Some(&json!({
            "origin": ["https://shop.example.com"], "credentials": true, "maxAge": 600,
            "methods": ["GET", "POST"], "headers": ["Content-Type"]
        })))
        .unwrap()
        .unwrap();
        let listed = headers(&[("origin", "https://shop.example.com")]);
        let mut response = HeaderMap::new();
        policy.apply_preflight(&listed, &mut response);
        assert_eq!(
            get(&response, "access-control-allow-origin"),
            Some("https://shop.example.com")
        );
        assert_eq!(
            get(&response, "access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(get(&response, "access-control-max-age"), Some("600"));
        assert_eq!(
            get(&response, "access-control-allow-methods"),
            Some("GET,POST")
        );
        assert_eq!(
            get(&response, "access-control-allow-headers"),
            Some("Content-Type")
        );
        assert_eq!(get(&response, "vary"), Some("Origin"));

        let other = headers(&[("origin", "https://evil.example")]);
        let mut response = HeaderMap::new();
        policy.apply_simple(&other, &mut response);
        assert_eq!(get(&response, "access-control-allow-origin"), None);
        assert_eq!(get(&response, "vary"), Some("Origin"));
    }

    #[test]
    fn fixed_origin_and_off() {
        let policy = CorsPolicy::from_setting(Some(&json!({"origin": "https://a.example"})))
            .unwrap()
            .unwrap();
        let mut response = HeaderMap::new();
        policy.apply_simple(&HeaderMap::new(), &mut response);
        assert_eq!(
            get(&response, "access-control-allow-origin"),
            Some("https://a.example")
        );
        assert_eq!(CorsPolicy::from_setting(Some(&json!(false))).unwrap(), None);
        assert!(CorsPolicy::from_setting(Some(&json!(3))).is_err());
    }
}
