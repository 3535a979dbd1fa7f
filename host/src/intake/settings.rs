//! The HTTP source of a flow: which step it is and what its settings say, read from the same
//! shape a flow config's `sources` map has.
//!
//! ```json
//! { "http": {
//!     "package": "@walkeros/server-source-express",
//!     "config": {
//!       "settings": { "paths": ["/collect"], "cors": true, "maxBatchSize": 100 },
//!       "async": { "GET": false, "POST": true }
//!     },
//!     "before": "decode" } }
//! ```

use serde_json::{Map, Value};

use super::body::DEFAULT_BODY_LIMIT;
use super::cors::CorsPolicy;
use super::routes::PathPattern;

/// The package whose HTTP contract flowhost serves.
pub const EXPRESS_PACKAGE: &str = "@walkeros/server-source-express";
/// The fetch variant; its settings are read the same way.
pub const FETCH_PACKAGE: &str = "@walkeros/server-source-fetch";

/// Default for `maxBatchSize`.
pub const DEFAULT_MAX_BATCH: usize = 100;

/// HTTP methods a route accepts events on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Methods {
    /// Pixel requests.
    pub get: bool,
    /// Event posts.
    pub post: bool,
}

/// One configured path.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Where it matches.
    pub pattern: PathPattern,
    /// What it accepts.
    pub methods: Methods,
}

/// When a request is answered relative to delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RespondFirst {
    /// Pixel GETs: respond before delivery (default false: sync).
    pub get: bool,
    /// POSTs: respond before delivery (default true).
    pub post: bool,
}

/// Everything the intake needs to know about the flow's HTTP source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSettings {
    /// The source's step id, passed to the guest with every request.
    pub id: String,
    /// Paths in configuration order.
    pub routes: Vec<Route>,
    /// CORS; `None` when off.
    pub cors: Option<CorsPolicy>,
    /// Largest batch accepted.
    pub max_batch: usize,
    /// Largest body, after inflating.
    pub body_limit: usize,
    /// Respond-first per method.
    pub respond_first: RespondFirst,
    /// Whether the host may refuse events the collector would refuse. False when a `before`
    /// or `next` chain or a `policy` could still make an event deliverable in the guest.
    pub host_checks: bool,
}

impl SourceSettings {
    /// The settings of a source with no configuration: `/collect`, CORS on, defaults.
    pub fn defaults(id: &str) -> Self {
        Self::from_step(id, &Value::Object(Map::new())).unwrap_or_else(|_| unreachable!())
    }

    /// Reads one entry of a `sources` map (`{package?, config?, before?, next?}`).
    pub fn from_step(id: &str, step: &Value) -> Result<Self, String> {
        let empty = Map::new();
        let step = match step {
            Value::Object(step) => step,
            Value::Null => &empty,
            other => return Err(format!("source {id:?} must be an object, not {other}")),
        };
        let config = match step.get("config") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(config)) => config,
            Some(other) => {
                return Err(format!(
                    "source {id:?}: `config` must be an object, not {other}"
                ));
            }
        };
        let settings = match config.get("settings") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(settings)) => settings,
            Some(other) => {
                return Err(format!(
                    "source {id:?}: `config.settings` must be an object, not {other}"
                ));
            }
        };
        let fail = |message: String| format!("source {id:?}: {message}");

        let routes = read_routes(settings).map_err(fail)?;
        let cors = CorsPolicy::from_setting(settings.get("cors")).map_err(fail)?;
        let max_batch = read_count(settings, "maxBatchSize")
            .map_err(fail)?
            .unwrap_or(DEFAULT_MAX_BATCH);
        let package = step.get("package").and_then(Value::as_str).unwrap_or("");
        // The fetch source bounds requests by `maxRequestSize`; express by body-parser's 1 MB.
        let body_limit = if package.starts_with(FETCH_PACKAGE) {
            read_count(settings, "maxRequestSize")
                .map_err(fail)?
                .unwrap_or(102_400)
        } else {
            DEFAULT_BODY_LIMIT
        };
        let respond_first = read_async(config.get("async")).map_err(fail)?;
        let present = |v: Option<&Value>| v.is_some_and(|v| !v.is_null());
        let host_checks = !present(step.get("before"))
            && !present(step.get("next"))
            && !present(config.get("policy"));

        Ok(Self {
            id: id.to_string(),
            routes,
            cors,
            max_batch,
            body_limit,
            respond_first,
            host_checks,
        })
    }

    /// Picks the HTTP source of a `sources` map: the first entry using the express or fetch
    /// package, or, when `any_package` is set (a bundle's own `sources` export), the first
    /// entry without a package. `Ok(None)` when there is none.
    pub fn from_sources(sources: &Value, any_package: bool) -> Result<Option<Self>, String> {
        let Value::Object(sources) = sources else {
            return Err(format!(
                "`sources` must be an object keyed by source id, not {sources}"
            ));
        };
        for (id, step) in sources {
            let package = step.get("package").and_then(Value::as_str);
            let http = match package {
                Some(p) => p.starts_with(EXPRESS_PACKAGE) || p.starts_with(FETCH_PACKAGE),
                None => any_package,
            };
            if http {
                return Self::from_step(id, step).map(Some);
            }
        }
        Ok(None)
    }

    /// The route a request path matches.
    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.pattern.matches(path))
    }
}

fn read_routes(settings: &Map<String, Value>) -> Result<Vec<Route>, String> {
    let both = Methods {
        get: true,
        post: true,
    };
    let entries = match (settings.get("paths"), settings.get("path")) {
        (Some(Value::Array(paths)), _) => paths.clone(),
        (Some(Value::Null) | None, Some(Value::String(path))) => vec![Value::String(path.clone())],
        (Some(Value::Null) | None, None | Some(Value::Null)) => {
            vec![Value::String("/collect".into())]
        }
        (Some(other), _) => return Err(format!("`paths` must be a list, not {other}")),
        (_, Some(other)) => return Err(format!("`path` must be a string, not {other}")),
    };
    entries
        .iter()
        .map(|entry| match entry {
            Value::String(path) => Ok(Route {
                pattern: PathPattern::new(path),
                methods: both,
            }),
            Value::Object(route) => {
                let Some(Value::String(path)) = route.get("path") else {
                    return Err(format!("a route object needs a string `path`: {entry}"));
                };
                let methods = match route.get("methods") {
                    None | Some(Value::Null) => both,
                    Some(Value::Array(methods)) => {
                        let mut m = Methods {
                            get: false,
                            post: false,
                        };
                        for method in methods {
                            match method.as_str().map(str::to_ascii_uppercase).as_deref() {
                                Some("GET") => m.get = true,
                                Some("POST") => m.post = true,
                                _ => {
                                    return Err(format!(
                                        "route {path:?}: methods may be \"GET\" and \"POST\", \
                                         not {method}"
                                    ));
                                }
                            }
                        }
                        m
                    }
                    Some(other) => {
                        return Err(format!(
                            "route {path:?}: `methods` must be a list, not {other}"
                        ));
                    }
                };
                Ok(Route {
                    pattern: PathPattern::new(path),
                    methods,
                })
            }
            other => Err(format!(
                "a path must be a string or {{path, methods}}, not {other}"
            )),
        })
        .collect()
}

fn read_count(settings: &Map<String, Value>, key: &str) -> Result<Option<usize>, String> {
    match settings.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64().map(|n| n as usize)),
        Some(other) => Err(format!("`{key}` must be a whole number, not {other}")),
    }
}

fn read_async(value: Option<&Value>) -> Result<RespondFirst, String> {
    let defaults = RespondFirst {
        get: false,
        post: true,
    };
    match value {
        None | Some(Value::Null) => Ok(defaults),
        Some(Value::Bool(all)) => Ok(RespondFirst {
            get: *all,
            post: *all,
        }),
        Some(Value::Object(per_method)) => {
            let flag = |method: &str, default: bool| match per_method.get(method) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(other) => Err(format!("`async.{method}` must be a boolean, not {other}")),
            };
            Ok(RespondFirst {
                get: flag("GET", defaults.get)?,
                post: flag("POST", defaults.post)?,
            })
        }
        Some(other) => Err(format!(
            "`async` must be a boolean or {{\"GET\": bool, \"POST\": bool}}, not {other}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_match_the_express_source() {
        let s = SourceSettings::defaults("http");
        assert_eq!(s.routes.len(), 1);
        assert!(s.route("/collect").is_some());
        assert_eq!(
            s.routes[0].methods,
            Methods {
                get: true,
                post: true
            }
        );
        assert!(s.cors.is_some());
        assert_eq!(s.max_batch, 100);
        assert_eq!(s.body_limit, 1 << 20);
        assert_eq!(
            s.respond_first,
            RespondFirst {
                get: false,
                post: true
            }
        );
        assert!(s.host_checks);
    }

    #[test]
    fn paths_objects_deprecated_path_async_and_chains() {
        let s = SourceSettings::from_step(
            "http",
            &json!({
                "config": {
                    "settings": {
                        "paths": ["/collect", {"path": "/pixel", "methods": ["GET"]}],
                        "cors": false, "maxBatchSize": 5
                    },
                    "async": {"POST": false}
                },
                "before": "decode"
            }),
        )
        .unwrap();
        assert_eq!(
            s.route("/pixel").unwrap().methods,
            Methods {
                get: true,
                post: false
            }
        );
        assert!(s.cors.is_none());
        assert_eq!(s.max_batch, 5);
        assert_eq!(
            s.respond_first,
            RespondFirst {
                get: false,
                post: false
            }
        );
        assert!(!s.host_checks);

        let s = SourceSettings::from_step(
            "http",
            &json!({"config": {"settings": {"path": "/e"}, "async": true}}),
        )
        .unwrap();
        assert!(s.route("/e").is_some() && s.route("/collect").is_none());
        assert!(s.respond_first.get && s.respond_first.post);
    }

    #[test]
    fn bad_settings_name_the_source_and_the_field() {
        let err = SourceSettings::from_step(
            "http",
            &json!({"config": {"settings": {"maxBatchSize": "ten"}}}),
        )
        .unwrap_err();
        assert!(
            err.contains("\"http\"") && err.contains("maxBatchSize"),
            "{err}"
        );
    }

    #[test]
    fn picks_the_express_or_fetch_source() {
        let sources = json!({
            "web": {"package": "@walkeros/web-source-browser"},
            "api": {"package": "@walkeros/server-source-fetch@4.2.1",
                    "config": {"settings": {"maxRequestSize": 1000}}}
        });
        let s = SourceSettings::from_sources(&sources, false)
            .unwrap()
            .unwrap();
        assert_eq!(s.id, "api");
        assert_eq!(s.body_limit, 1000);
        assert_eq!(
            SourceSettings::from_sources(&json!({"x": {"package": "other"}}), false).unwrap(),
            None
        );
        let bundle = SourceSettings::from_sources(&json!({"intake": {}}), true)
            .unwrap()
            .unwrap();
        assert_eq!(bundle.id, "intake");
    }
}
