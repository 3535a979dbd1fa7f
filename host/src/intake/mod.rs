//! HTTP intake: the contract of `@walkeros/server-source-express` (routes, CORS, bodies,
//! batches, the pixel GET, respond-first and sync answers), served by the host and feeding the
//! flow through the call contract in [`delivery`].
//!
//! This module turns one request into events and one response. It does not own sockets,
//! connections or the runner's own endpoints (see `runner`), and it never runs flow code itself:
//! the source's `ingest` mapping, its `before`/`next` chains, its mapping and the collector run
//! in the guest, and a step there may choose the answer (`env.respond`) when the request waits
//! for delivery.

pub mod body;
pub mod cors;
pub mod delivery;
pub mod events;
pub mod pixel;
pub mod response;
pub mod routes;
pub mod settings;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, StatusCode};
use http_body::Body;
use serde_json::{Value, json};

use crate::metrics::Metrics;
use body::{BodyError, BodyKind};
pub use delivery::{Answer, Delivered, Delivery, DeliveryError, InFlight, Ingest, Outcome, Scope};
use events::{Envelope, ScopeBody, invalid_reason};
pub use response::HttpResponse;
use response::{StepAnswer, now_ms};
pub use settings::SourceSettings;

/// How long a client may take to send a request body. Arbitrary but generous: 1 MB at
/// 1 Mbit/s takes 8 s; a client slower than this holds a connection and a buffer for nothing.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

const NOSNIFF: (HeaderName, HeaderValue) = (
    HeaderName::from_static("x-content-type-options"),
    HeaderValue::from_static("nosniff"),
);

/// A flow's HTTP source: its settings and the delivery into its flow.
pub struct HttpSource {
    /// What the source's settings say.
    pub settings: SourceSettings,
    /// Where events go.
    pub delivery: Delivery,
    metrics: Arc<Metrics>,
    body_timeout: Duration,
    /// Rate limit for "failed after the response went out" warnings.
    late_failures: LogThrottle,
    /// Rate limit for warnings about answers a step chose that cannot be sent.
    broken_answers: LogThrottle,
}

/// What happened to a request's events.
enum Dispatched {
    /// Answered before delivery; delivery continues in the background.
    Accepted,
    /// Delivered; one outcome per event, and the answer a step chose.
    Done(Delivered),
}

impl HttpSource {
    /// A source serving `settings` into `delivery`.
    pub fn new(
        settings: SourceSettings,
        delivery: Delivery,
        metrics: Arc<Metrics>,
        body_timeout: Duration,
    ) -> Self {
        Self {
            settings,
            delivery,
            metrics,
            body_timeout,
            late_failures: LogThrottle::default(),
            broken_answers: LogThrottle::default(),
        }
    }

    /// Answers one request on any path; `peer` is the client's address.
    pub async fn handle<B>(
        self: &Arc<Self>,
        request: Request<B>,
        peer: Option<IpAddr>,
    ) -> HttpResponse
    where
        B: Body<Data = Bytes> + Send,
    {
        let (parts, body) = request.into_parts();
        let mut response = self.route(&parts, body, peer).await;

        // App-wide headers, as the express source's middleware sets them on every answer; a
        // step's own answer sets its headers after the middleware, so those stay.
        if response.extensions().get::<StepAnswer>().is_some() {
            let mut app_wide = HeaderMap::new();
            self.app_wide_headers(&parts, &mut app_wide);
            let headers = response.headers_mut();
            for name in app_wide.keys() {
                if !headers.contains_key(name) {
                    for value in app_wide.get_all(name) {
                        headers.append(name.clone(), value.clone());
                    }
                }
            }
        } else {
            self.app_wide_headers(&parts, response.headers_mut());
        }
        response
    }

    fn app_wide_headers(&self, parts: &Parts, headers: &mut HeaderMap) {
        headers.insert(NOSNIFF.0, NOSNIFF.1);
        if parts.method != Method::OPTIONS
            && let Some(cors) = &self.settings.cors
        {
            cors.apply_simple(&parts.headers, headers);
        }
    }

    async fn route<B>(
        self: &Arc<Self>,
        parts: &Parts,
        body: B,
        peer: Option<IpAddr>,
    ) -> HttpResponse
    where
        B: Body<Data = Bytes> + Send,
    {
        let path = parts.uri.path();
        let route = self.settings.route(path);

        if parts.method == Method::OPTIONS {
            // The CORS middleware answers every preflight, on any path, before routing.
            if let Some(cors) = &self.settings.cors {
                let mut response = response::empty(StatusCode::NO_CONTENT);
                cors.apply_preflight(&parts.headers, response.headers_mut());
                return response;
            }
            if route.is_some() {
                return response::empty(StatusCode::NO_CONTENT);
            }
        }

        let Some(route) = route else {
            return not_found(parts);
        };
        match parts.method {
            Method::POST if route.methods.post => self.post(parts, body, peer).await,
            Method::GET if route.methods.get => self.pixel(parts, peer).await,
            // Express routes HEAD to GET handlers, and the source's handler refuses it.
            Method::HEAD if route.methods.get => response::json(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"success": false, "error": "Method not allowed. Use POST, GET, or OPTIONS."}),
            ),
            _ => not_found(parts),
        }
    }

    async fn pixel(self: &Arc<Self>, parts: &Parts, peer: Option<IpAddr>) -> HttpResponse {
        let target = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path(), |pq| pq.as_str());
        let event = pixel::request_to_data(target);
        if self.settings.host_checks
            && let Some(reason) = invalid_reason(&event)
        {
            return self.refuse_invalid(reason);
        }

        let request = Ingest {
            events: vec![event],
            batch: false,
            body_from_events: false,
            scope: scope(parts, None, peer),
        };
        // Sync (the default for GET), a step may answer with real content instead of the GIF.
        match self
            .dispatch(request, self.settings.respond_first.get)
            .await
        {
            Ok(Dispatched::Done(Delivered {
                answer: Some(answer),
                ..
            })) => self.step_answer(answer),
            Ok(_) => response::gif(),
            Err(e) => self.delivery_failed(e),
        }
    }

    async fn post<B>(self: &Arc<Self>, parts: &Parts, body: B, peer: Option<IpAddr>) -> HttpResponse
    where
        B: Body<Data = Bytes> + Send,
    {
        let kind = match body::body_kind(&parts.headers) {
            Ok(kind) => kind,
            Err(e) => return self.refuse_body(e),
        };
        let parsed = match kind {
            BodyKind::Json(charset) => match self.read_json(parts, body, charset).await {
                Ok(parsed) => Some(parsed),
                Err(e) => return self.refuse_body(e),
            },
            // Like the express source, other types are not read at all.
            BodyKind::Missing | BodyKind::Other(_) => None,
        };
        if let Some(refusal) = self.refuse_undeliverable_body(parts, &kind, parsed.as_ref()) {
            return refusal;
        }

        let (envelope, scope_body) = Envelope::from_body(parsed.map(|p| p.value));
        if envelope.batch && envelope.events.len() > self.settings.max_batch {
            self.metrics.count_refusal("batch_too_large");
            return response::json(
                StatusCode::BAD_REQUEST,
                &json!({
                    "success": false,
                    "error": format!("Batch too large. Maximum size: {} events", self.settings.max_batch),
                    "timestamp": now_ms(),
                }),
            );
        }
        let batch = envelope.batch;
        let split = match self.split_refused(envelope, scope_body) {
            Ok(split) => split,
            Err(reason) => return self.refuse_invalid(reason),
        };

        let respond_first = self.settings.respond_first.post;
        let delivered_count = split.deliver.len();
        let total = delivered_count + split.refused.len();
        let (body, body_from_events) = match split.scope_body {
            ScopeBody::None => (None, false),
            ScopeBody::Events => (None, true),
            ScopeBody::Value(value) => (Some(value), false),
        };
        let request = Ingest {
            events: split.deliver,
            batch,
            body_from_events,
            scope: scope(parts, body, peer),
        };
        let dispatched = if request.events.is_empty() {
            Ok(if respond_first {
                Dispatched::Accepted
            } else {
                Dispatched::Done(Delivered::default())
            })
        } else {
            self.dispatch(request, respond_first).await
        };

        let refused = &split.refused;
        let outcomes = match dispatched {
            // Sync: a step that answered the request (first call wins) replaces the source's
            // own answer, as the express source's closing respond call is then a no-op.
            Ok(Dispatched::Done(Delivered {
                answer: Some(answer),
                ..
            })) => return self.step_answer(answer),
            Ok(Dispatched::Accepted) if refused.is_empty() => {
                return response::json(
                    StatusCode::OK,
                    &json!({"success": true, "timestamp": now_ms()}),
                );
            }
            // Accepted events count as processed; the refused ones are reported by index.
            Ok(Dispatched::Accepted) => (0..delivered_count)
                .map(|_| Outcome {
                    ok: true,
                    ..Outcome::default()
                })
                .collect(),
            Ok(Dispatched::Done(delivered)) => delivered.outcomes,
            Err(e) => return self.delivery_failed(e),
        };
        let outcomes = merge_refused(outcomes, refused, total);
        if batch {
            batch_response(&outcomes, !refused.is_empty() && refused.len() == total)
        } else {
            single_response(outcomes.into_iter().next().unwrap_or_default())
        }
    }

    /// Refuses a body nothing in the guest could turn into an event: empty, untyped, or of a
    /// type that is not read. Sources with chains or a policy are left alone.
    fn refuse_undeliverable_body(
        &self,
        parts: &Parts,
        kind: &BodyKind,
        parsed: Option<&Parsed>,
    ) -> Option<HttpResponse> {
        if !self.settings.host_checks {
            return None;
        }
        let reason = match (kind, parsed) {
            (_, Some(Parsed { empty: true, .. })) => "empty_body",
            (BodyKind::Missing, _) if !has_body(parts) => "empty_body",
            (BodyKind::Missing | BodyKind::Other(_), _) => "unsupported_content_type",
            _ => return None,
        };
        self.metrics.count_refusal(reason);
        let error = match kind {
            _ if reason == "empty_body" => "Request body is empty: send an event, an array of \
                events or {\"batch\": [...]} as JSON"
                .to_string(),
            BodyKind::Other(t) => format!(
                "Unsupported Content-Type \"{t}\": send events as application/json or text/plain"
            ),
            _ => "Missing Content-Type: send events as application/json or text/plain".to_string(),
        };
        Some(response::json(
            StatusCode::BAD_REQUEST,
            &json!({"success": false, "error": error, "timestamp": now_ms()}),
        ))
    }

    /// Takes out the events the collector would refuse anyway. A single refused event is the
    /// whole request (`Err` with its reason); in a batch they are remembered by index.
    fn split_refused(
        &self,
        envelope: Envelope,
        scope_body: ScopeBody,
    ) -> Result<Split, &'static str> {
        let reasons: Vec<Option<&'static str>> = envelope
            .events
            .iter()
            .map(|event| invalid_reason(event).filter(|_| self.settings.host_checks))
            .collect();
        if !envelope.batch
            && let Some(reason) = reasons.first().copied().flatten()
        {
            return Err(reason);
        }
        // Once some events are taken out, the rest no longer stand for the body.
        let scope_body = match scope_body {
            ScopeBody::Events if reasons.iter().any(Option::is_some) => {
                ScopeBody::Value(envelope.to_body())
            }
            other => other,
        };
        let mut split = Split {
            deliver: Vec::with_capacity(envelope.events.len()),
            refused: Vec::new(),
            scope_body,
        };
        for (index, (event, reason)) in envelope.events.into_iter().zip(reasons).enumerate() {
            match reason {
                Some(reason) => split.refused.push((index, reason)),
                None => split.deliver.push(event),
            }
        }
        if !split.refused.is_empty() {
            self.metrics
                .events_invalid
                .fetch_add(split.refused.len() as u64, Ordering::Relaxed);
            self.metrics.count_refusal("invalid_event");
        }
        Ok(split)
    }

    /// Reads, decompresses, decodes and parses a JSON body. The limit bounds the decompressed
    /// bytes, as body-parser's does; UTF-16 turned into UTF-8 grows by half at most.
    async fn read_json<B>(
        &self,
        parts: &Parts,
        body: B,
        charset: body::Charset,
    ) -> Result<Parsed, BodyError>
    where
        B: Body<Data = Bytes> + Send,
    {
        let encoding = body::encoding(&parts.headers)?;
        let limit = self.settings.body_limit;
        let raw = body::read_limited(&parts.headers, body, limit, self.body_timeout).await?;
        let bytes = body::to_utf8(body::decode(raw, encoding, limit)?, charset)?;
        let empty = bytes.iter().all(u8::is_ascii_whitespace);
        Ok(Parsed {
            value: body::parse_json(&bytes)?,
            empty,
        })
    }

    /// Hands events to the flow: in the background after answering (respond-first) or before.
    async fn dispatch(
        self: &Arc<Self>,
        request: Ingest,
        respond_first: bool,
    ) -> Result<Dispatched, DeliveryError> {
        let admission = match self.delivery.admit().await {
            Ok(admission) => admission,
            Err(e) => {
                self.metrics.count_refusal("flow_busy");
                return Err(e);
            }
        };
        let count = request.events.len() as u64;
        self.metrics
            .events_received
            .fetch_add(count, Ordering::Relaxed);

        if !respond_first {
            let result = self.delivery.deliver(&self.settings.id, &request).await;
            drop(admission);
            self.count_outcomes(count, &result);
            return result.map(Dispatched::Done);
        }

        // The answer goes out first; what a step answers later is dropped, as the express
        // source's own respond call has already won.
        let this = self.clone();
        let work = self.delivery.background().enter();
        tokio::spawn(async move {
            let _admission = admission;
            let _work = work;
            let result = this.delivery.deliver(&this.settings.id, &request).await;
            this.count_outcomes(count, &result);
            // Invalid input is the client's fault and already counted; it is not worth a line.
            let failed = match &result {
                Ok(delivered) => delivered
                    .outcomes
                    .iter()
                    .find(|o| !o.ok && !o.invalid)
                    .map(|o| {
                        o.error
                            .clone()
                            .unwrap_or_else(|| "Event was not processed".into())
                    }),
                Err(e) => Some(e.to_string()),
            };
            if let Some(error) = failed
                && let Some(suppressed) = this.late_failures.allow()
            {
                tracing::warn!(
                    flow = %this.delivery.flow().name(),
                    error = %error,
                    similar_suppressed = suppressed,
                    "Event not processed after the response went out"
                );
            }
        });
        Ok(Dispatched::Accepted)
    }

    /// Counts what became of `count` events handed to the flow: delivered, refused by the flow
    /// as invalid input, or failed.
    fn count_outcomes(&self, count: u64, result: &Result<Delivered, DeliveryError>) {
        let (failed, invalid) = match result {
            Ok(delivered) => delivered
                .outcomes
                .iter()
                .fold((0, 0), |(failed, invalid), o| match (o.ok, o.invalid) {
                    (true, _) => (failed, invalid),
                    (false, true) => (failed, invalid + 1),
                    (false, false) => (failed + 1, invalid),
                }),
            Err(_) => (count, 0),
        };
        let metrics = &self.metrics;
        metrics
            .events_delivered
            .fetch_add(count.saturating_sub(failed + invalid), Ordering::Relaxed);
        metrics.events_failed.fetch_add(failed, Ordering::Relaxed);
        metrics.events_invalid.fetch_add(invalid, Ordering::Relaxed);
    }

    /// Sends the answer a step chose; one that cannot be sent is the flow's fault: 500.
    fn step_answer(&self, answer: Result<Answer, String>) -> HttpResponse {
        match answer {
            Ok(answer) => response::answer(answer),
            Err(reason) => {
                if let Some(suppressed) = self.broken_answers.allow() {
                    tracing::warn!(
                        flow = %self.delivery.flow().name(),
                        error = %reason,
                        similar_suppressed = suppressed,
                        "A step answered the request with something that cannot be sent"
                    );
                }
                response::json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"success": false, "error": "Internal server error"}),
                )
            }
        }
    }

    fn refuse_invalid(&self, reason: &str) -> HttpResponse {
        self.metrics.events_invalid.fetch_add(1, Ordering::Relaxed);
        self.metrics.count_refusal("invalid_event");
        response::json(
            StatusCode::BAD_REQUEST,
            &json!({"success": false, "error": reason, "timestamp": now_ms()}),
        )
    }

    fn refuse_body(&self, error: BodyError) -> HttpResponse {
        self.metrics.count_refusal(error.reason());
        tracing::debug!(error = %error, "Request body rejected");
        response::json(
            error.status(),
            &json!({"success": false, "error": error.to_string()}),
        )
    }

    fn delivery_failed(&self, error: DeliveryError) -> HttpResponse {
        match error {
            DeliveryError::Busy => {
                let mut response = response::json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"success": false, "error": "The flow is busy; retry later", "timestamp": now_ms()}),
                );
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            other => {
                // The reason can name files and flow internals; it goes to the log, not the client.
                tracing::error!(flow = %self.delivery.flow().name(), error = %other, "Delivery failed");
                response::json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"success": false, "error": "Internal server error"}),
                )
            }
        }
    }
}

/// A parsed JSON body, remembering whether it was empty (which parses as `{}`).
struct Parsed {
    value: Value,
    empty: bool,
}

/// A request's events, split into those handed to the flow and those refused by the host.
struct Split {
    deliver: Vec<Value>,
    /// Index in the request and reason of each refused event.
    refused: Vec<(usize, &'static str)>,
    scope_body: ScopeBody,
}

/// The answer to a single event that was delivered (sync) or failed.
fn single_response(outcome: Outcome) -> HttpResponse {
    match outcome.error {
        None => response::json(
            StatusCode::OK,
            &json!({"success": true, "timestamp": now_ms()}),
        ),
        Some(error) => response::json(
            if outcome.invalid {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            },
            &json!({"success": false, "error": error, "timestamp": now_ms()}),
        ),
    }
}

/// Puts the host-refused events back at their indices among the delivered outcomes.
fn merge_refused(
    delivered: Vec<Outcome>,
    refused: &[(usize, &'static str)],
    total: usize,
) -> Vec<Outcome> {
    if refused.is_empty() {
        return delivered;
    }
    let mut delivered = delivered.into_iter();
    let mut refused = refused.iter().peekable();
    (0..total)
        .map(|index| match refused.peek() {
            Some((i, reason)) if *i == index => {
                refused.next();
                Outcome {
                    ok: false,
                    id: None,
                    error: Some((*reason).to_string()),
                    invalid: true,
                }
            }
            _ => delivered.next().unwrap_or_default(),
        })
        .collect()
}

/// walkerOS `batchResponse`: 200 with ids when all succeeded, else 207 with the errors by index
/// (400 when every event was refused as invalid, flowhost's choice).
fn batch_response(outcomes: &[Outcome], all_invalid: bool) -> HttpResponse {
    let errors: Vec<Value> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(index, o)| {
            o.error
                .as_ref()
                .map(|error| json!({"index": index, "error": error}))
        })
        .collect();
    if errors.is_empty() {
        let ids: Vec<Value> = outcomes
            .iter()
            .map(|o| o.id.clone().map_or(Value::Null, Value::String))
            .collect();
        return response::json(
            StatusCode::OK,
            &json!({"success": true, "processed": outcomes.len(), "ids": ids}),
        );
    }
    let status = if all_invalid {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::MULTI_STATUS
    };
    response::json(
        status,
        &json!({
            "success": false,
            "processed": outcomes.len() - errors.len(),
            "failed": errors.len(),
            "errors": errors,
        }),
    )
}

fn not_found(parts: &Parts) -> HttpResponse {
    response::html_error(
        StatusCode::NOT_FOUND,
        &format!("Cannot {} {}", parts.method, parts.uri.path()),
    )
}

/// Whether the request declares a body at all (`Content-Length` above 0, or chunked).
fn has_body(parts: &Parts) -> bool {
    let length = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match length {
        Some(n) => n > 0,
        None => parts.headers.contains_key(http::header::TRANSFER_ENCODING),
    }
}

/// The scope the flow's source sees for this request.
pub fn scope(parts: &Parts, body: Option<Value>, peer: Option<IpAddr>) -> Scope {
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |pq| pq.as_str());
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty());
    let mut headers = indexmap::IndexMap::with_capacity(parts.headers.keys_len());
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .entry(name.as_str().to_string())
            .and_modify(|joined: &mut String| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let mut query = indexmap::IndexMap::new();
    if let Some(q) = parts.uri.query() {
        for (key, value) in form_urlencoded::parse(q.as_bytes()) {
            query
                .entry(key.into_owned())
                .and_modify(|joined: &mut String| {
                    joined.push(',');
                    joined.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
    }
    Scope {
        method: parts.method.as_str().to_ascii_uppercase(),
        url: host.map_or_else(String::new, |host| format!("http://{host}{target}")),
        path: parts.uri.path().to_string(),
        query,
        headers,
        body,
        ip: peer.map(|ip| ip.to_string()),
    }
}

/// Lets one log line through per interval and counts the rest.
#[derive(Default)]
struct LogThrottle {
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogThrottle {
    /// One line per 10 s: long enough that a failing destination under load logs a handful of
    /// lines a minute, short enough that a new failure shows up quickly.
    const INTERVAL_MS: u64 = 10_000;

    /// `Some(suppressed since the last line)` when a line may be written now.
    fn allow(&self) -> Option<u64> {
        let now = now_ms();
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= Self::INTERVAL_MS
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_events_keep_their_index() {
        let delivered = vec![
            Outcome {
                ok: true,
                id: Some("a".into()),
                ..Outcome::default()
            },
            Outcome {
                ok: true,
                id: Some("c".into()),
                ..Outcome::default()
            },
        ];
        let merged = merge_refused(delivered, &[(1, "Event name is required")], 3);
        assert_eq!(merged[0].id.as_deref(), Some("a"));
        assert_eq!(merged[1].error.as_deref(), Some("Event name is required"));
        assert_eq!(merged[2].id.as_deref(), Some("c"));
    }

    #[test]
    fn scope_matches_the_express_source() {
        let request = Request::post("/collect?a=1&a=2&b=x")
            .header("Host", "example.com:8080")
            .header("X-Multi", "1")
            .header("x-multi", "2")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let scope = scope(&parts, None, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(scope.method, "POST");
        assert_eq!(scope.url, "http://example.com:8080/collect?a=1&a=2&b=x");
        assert_eq!(scope.path, "/collect");
        assert_eq!(scope.query.get("a").map(String::as_str), Some("1,2"));
        assert_eq!(
            scope.headers.get("x-multi").map(String::as_str),
            Some("1, 2")
        );
        assert_eq!(scope.ip.as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn throttle_lets_the_first_line_through() {
        let throttle = LogThrottle::default();
        assert_eq!(throttle.allow(), Some(0));
        assert_eq!(throttle.allow(), None);
    }
}
