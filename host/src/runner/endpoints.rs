//! Request routing: the runner's own endpoints (`/health`, `/ready`, `/status`, `/metrics`),
//! answered even while no flow is loaded, and everything else to the flow's HTTP source
//! (collect mode) or the served file (serve mode).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{ALLOW, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body::Body;
use serde_json::{Value, json};

use super::options::Mode;
use super::serve::ServedFile;
use super::state::{Readiness, RunnerState};
use crate::intake::HttpResponse;
use crate::intake::response;
use crate::metrics::{Gauges, Route};

/// `application/json`, as the original runner's own server sends it.
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Everything a request can be answered from.
pub struct App {
    /// The runner's state.
    pub state: Arc<RunnerState>,
    /// The served file, in serve mode.
    pub served: Option<ServedFile>,
}

impl App {
    /// Answers one request and says which part of the server did.
    pub async fn handle<B>(
        &self,
        request: Request<B>,
        peer: Option<IpAddr>,
    ) -> (Route, HttpResponse)
    where
        B: Body<Data = Bytes> + Send,
    {
        let runner_route = match request.uri().path() {
            "/health" => Some(Route::Health),
            "/ready" => Some(Route::Ready),
            "/status" => Some(Route::Status),
            "/metrics" => Some(Route::Metrics),
            _ => None,
        };
        if let Some(route) = runner_route {
            let response = if matches!(*request.method(), Method::GET | Method::HEAD) {
                self.runner_endpoint(route)
            } else {
                let mut response = plain_json(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &json!({"error": "Method not allowed; use GET or HEAD"}),
                );
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
                response
            };
            return (route, response);
        }

        match self.state.mode {
            Mode::Serve => match &self.served {
                Some(served) => served.handle(&request),
                None => (Route::Other, no_flow("No file to serve")),
            },
            Mode::Collect => {
                let Some(generation) = self.state.flow.current() else {
                    return (Route::Other, no_flow("No flow loaded"));
                };
                let Some(intake) = &generation.intake else {
                    return (Route::Other, no_flow("The flow has no HTTP source"));
                };
                let _request = generation.enter_request();
                (Route::Intake, intake.handle(request, peer).await)
            }
        }
    }

    fn runner_endpoint(&self, route: Route) -> HttpResponse {
        match route {
            Route::Health => plain_json(StatusCode::OK, &json!({"status": "ok"})),
            Route::Ready => ready(&self.state.readiness()),
            Route::Status => plain_json(StatusCode::OK, &self.status()),
            _ => {
                let generation = self.state.flow.current();
                let gauges = Gauges {
                    uptime_seconds: self.state.started.elapsed().as_secs_f64(),
                    ready: self.state.readiness() == Readiness::Ready,
                    generation: generation.as_ref().map_or(0, |g| g.number),
                    deliveries_in_flight: generation.as_ref().map_or(0, |g| g.in_flight().1) as u64,
                };
                let page = self
                    .state
                    .metrics
                    .render(generation.as_ref().map(|g| g.flow.stats()), gauges);
                response::with_body(
                    StatusCode::OK,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    Bytes::from(page),
                )
            }
        }
    }

    /// The `/status` document.
    pub fn status(&self) -> Value {
        let state = &self.state;
        let generation = state.flow.current();
        let control = state.control();
        let status = match state.readiness() {
            Readiness::NotReady => "starting",
            Readiness::Ready => "running",
            Readiness::Failed(_) => "failed",
            Readiness::Draining => "draining",
        };
        let mut document = json!({
            "status": status,
            "version": env!("CARGO_PKG_VERSION"),
            "mode": state.mode.as_str(),
            "instanceId": state.instance_id,
            "configVersion": generation.as_ref().map(|g| g.version.clone()),
            "configSource": generation.as_ref().map_or("local", |g| g.source.as_str()),
            "flow": generation.as_ref().map(|g| g.name.clone()),
            "generation": generation.as_ref().map(|g| g.number),
            "apiEnabled": control.api.is_some(),
            "api": control.api,
            "lastPoll": control.last_poll,
            "lastHeartbeat": control.last_heartbeat,
            "uptime": state.started.elapsed().as_secs(),
            "port": state.port.load(Ordering::Relaxed),
        });
        if let (Some(served), Value::Object(map)) = (&self.served, &mut document) {
            map.insert(
                "serve".into(),
                json!({"file": served.file().display().to_string(), "url": served.url_path()}),
            );
        }
        document
    }
}

/// The `/ready` answer for a readiness state.
pub fn ready(readiness: &Readiness) -> HttpResponse {
    match readiness {
        Readiness::Ready => plain_json(StatusCode::OK, &json!({"status": "ready"})),
        Readiness::NotReady => plain_json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "not_ready"}),
        ),
        Readiness::Failed(reason) => plain_json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "failed", "reason": reason}),
        ),
        Readiness::Draining => plain_json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "draining"}),
        ),
    }
}

fn no_flow(error: &str) -> HttpResponse {
    plain_json(StatusCode::SERVICE_UNAVAILABLE, &json!({"error": error}))
}

fn plain_json(status: StatusCode, body: &Value) -> HttpResponse {
    response::with_body(status, JSON, Bytes::from(body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(response: HttpResponse) -> Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn ready_answers_each_state() {
        let cases = [
            (Readiness::NotReady, 503, json!({"status": "not_ready"})),
            (Readiness::Ready, 200, json!({"status": "ready"})),
            (
                Readiness::Failed("flow boom failed to start: Error: boom".into()),
                503,
                json!({"status": "failed", "reason": "flow boom failed to start: Error: boom"}),
            ),
            (Readiness::Draining, 503, json!({"status": "draining"})),
        ];
        for (state, status, expected) in cases {
            let response = ready(&state);
            assert_eq!(response.status().as_u16(), status, "{state:?}");
            assert_eq!(response.headers()["content-type"], "application/json");
            assert_eq!(body(response).await, expected);
        }
    }

    #[tokio::test]
    async fn runner_endpoints_answer_without_a_flow() {
        let app = App {
            state: Arc::new(RunnerState::new(Mode::Collect, Arc::default())),
            served: None,
        };
        let get = |path: &str| {
            Request::get(path)
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap()
        };

        let (route, response) = app.handle(get("/health"), None).await;
        assert_eq!((route, response.status().as_u16()), (Route::Health, 200));
        assert_eq!(body(response).await, json!({"status": "ok"}));

        let (_, response) = app.handle(get("/collect"), None).await;
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(body(response).await, json!({"error": "No flow loaded"}));

        let (_, response) = app.handle(get("/status"), None).await;
        let status = body(response).await;
        assert_eq!(status["status"], "starting");
        assert_eq!(status["flow"], Value::Null);
        assert_eq!(status["api"], Value::Null);

        let post = Request::post("/health")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let (_, response) = app.handle(post, None).await;
        assert_eq!(response.status().as_u16(), 405);
        assert_eq!(response.headers()["allow"], "GET, HEAD");
    }
}
