//! The call contract between the intake and a flow (see README, "The bundle contract").
//!
//! A flow that exports `ingest(request)` gets every request's events in one call, with the
//! request scope, and answers one result per event, plus the answer a step gave the request
//! through `env.respond`, if one did. A flow without it gets `push(event)` once per event, in
//! order. Which one a flow has is learned from the first call and remembered.
//!
//! Delivery is bounded: a request is admitted only while fewer than the window's worth of
//! deliveries are running, so a flow slower than its traffic pushes back on clients instead of
//! piling up work (or failing calls with "busy").

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use http::StatusCode;
use http::header::{HeaderName, HeaderValue};
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::sandbox::{CallError, Flow};

/// The request as the flow's source sees it (walkerOS `Source.Scope`, without `raw`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scope {
    /// Upper-case method.
    pub method: String,
    /// Absolute URL (`http://<host><path>?<query>`), or empty without a `Host` header.
    pub url: String,
    /// Path without the query.
    pub path: String,
    /// Query parameters; repeated keys joined with `,`.
    pub query: IndexMap<String, String>,
    /// Headers with lower-case names; repeated values joined with `, `.
    pub headers: IndexMap<String, String>,
    /// The parsed body, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// The client's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// One request's events on their way to the flow.
#[derive(Debug, Clone, Default)]
pub struct Ingest {
    /// The events, in submission order.
    pub events: Vec<Value>,
    /// Whether they came as a batch (an array or `{"batch": [...]}`).
    pub batch: bool,
    /// The body is the events themselves and is left out of `scope.body`: it is `events` for a
    /// batch, `events[0]` otherwise. Parsing it twice would double the guest's work.
    pub body_from_events: bool,
    /// The request.
    pub scope: Scope,
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// Accepted by the flow.
    pub ok: bool,
    /// The event's id, when the flow reported one.
    pub id: Option<String>,
    /// Why it was not accepted.
    pub error: Option<String>,
    /// Refused as invalid input (the client's fault) rather than failed.
    pub invalid: bool,
}

impl Outcome {
    fn failed(error: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(error.into()),
            ..Self::default()
        }
    }

    /// Reads one result: `{ok, id?, error?, invalid?}`, or a collector push result with the
    /// id under `event.id`. Anything that is not `{ok: false}` counts as accepted.
    fn from_result(value: &Value) -> Self {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
        if value.get("ok") == Some(&Value::Bool(false)) {
            let invalid = value.get("invalid") == Some(&Value::Bool(true));
            let fallback = if invalid {
                "Invalid event"
            } else {
                "Event was not processed"
            };
            return Self {
                ok: false,
                id: None,
                error: Some(text("error").unwrap_or_else(|| fallback.to_string())),
                invalid,
            };
        }
        let id = text("id").or_else(|| {
            value
                .get("event")
                .and_then(|e| e.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        Self {
            ok: true,
            id,
            ..Self::default()
        }
    }
}

/// What the flow made of one request's events.
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    /// One outcome per event, in order.
    pub outcomes: Vec<Outcome>,
    /// The answer a step gave through `env.respond` (the first one; later calls are no-ops),
    /// or why it cannot be sent.
    pub answer: Option<Result<Answer, String>>,
}

/// An HTTP answer a step chose with `env.respond({status, headers, body})`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// `status`, 200 when not given.
    pub status: StatusCode,
    /// `headers` in the order given, without the framing headers the server owns.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `body`.
    pub body: AnswerBody,
}

/// What an [`Answer`] sends, read as the express source's respond does.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerBody {
    /// No body.
    Empty,
    /// A string, sent as it is.
    Text(String),
    /// Bytes (a `Uint8Array` or `Buffer` in the guest), sent as they are.
    Bytes(Vec<u8>),
    /// Any other value, sent as JSON.
    Json(Value),
}

/// Headers a step may set in Express but that describe the connection or the framing, which
/// the server decides here; they are left out.
const FRAMING_HEADERS: [&str; 7] = [
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
];

impl Answer {
    /// Reads the `respond` member of an ingest result: `{status?, headers?, body?,
    /// bodyEncoding?}`, where `bodyEncoding: "base64"` marks bytes.
    pub fn from_value(value: &Value) -> Result<Self, String> {
        let Value::Object(options) = value else {
            return Err(format!("`respond` must be an object, not {}", kind(value)));
        };
        let status = match options.get("status") {
            None => StatusCode::OK,
            Some(Value::Number(n)) => n
                .as_u64()
                .filter(|n| (200..=999).contains(n))
                .and_then(|n| StatusCode::from_u16(n as u16).ok())
                .ok_or_else(|| {
                    format!("`respond` status must be an integer from 200 to 999, not {n}")
                })?,
            Some(other) => {
                return Err(format!(
                    "`respond` status must be a number, not {}",
                    kind(other)
                ));
            }
        };
        let headers = match options.get("headers") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(headers)) => read_headers(headers)?,
            Some(other) => {
                return Err(format!(
                    "`respond` headers must be an object, not {}",
                    kind(other)
                ));
            }
        };
        let encoding = options.get("bodyEncoding").and_then(Value::as_str);
        let body = match (options.get("body"), encoding) {
            (None, _) => AnswerBody::Empty,
            (Some(Value::String(text)), Some("base64")) => AnswerBody::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| format!("`respond` body is not valid base64: {e}"))?,
            ),
            (Some(_), Some(other)) => {
                return Err(format!(
                    "`respond` bodyEncoding must be \"base64\", not {other:?}"
                ));
            }
            (Some(Value::String(text)), None) => AnswerBody::Text(text.clone()),
            (Some(value), None) => AnswerBody::Json(value.clone()),
        };
        Ok(Self {
            status,
            headers,
            body,
        })
    }
}

/// `headers` of a respond call: strings, numbers and booleans as their text, a list as one
/// header line per item (as Express's `res.set` takes them).
fn read_headers(headers: &Map<String, Value>) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            format!("`respond` header name {name:?} is not a valid HTTP header name")
        })?;
        if FRAMING_HEADERS.contains(&header.as_str()) {
            continue;
        }
        let values = match value {
            Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for value in values {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(_) | Value::Bool(_) => value.to_string(),
                other => {
                    return Err(format!(
                        "`respond` header {name:?} must be a string, not {}",
                        kind(other)
                    ));
                }
            };
            let value = HeaderValue::from_str(&text).map_err(|_| {
                format!("`respond` header {name:?} has a value HTTP cannot carry: {text:?}")
            })?;
            out.push((header.clone(), value));
        }
    }
    Ok(out)
}

/// Why a request's events could not be handed to the flow at all.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No delivery slot came free in time.
    #[error("the flow is busy; retry later")]
    Busy,
    /// The `ingest` call failed as a whole.
    #[error(transparent)]
    Call(#[from] CallError),
    /// `ingest` answered something other than one result per event (and an answer).
    #[error("the flow's ingest broke the contract: {0}")]
    Contract(String),
}

/// Counts work in progress so shutdown and swaps can wait for it.
#[derive(Debug, Default)]
pub struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// One unit of work counted by an [`InFlight`]; dropping it ends the work.
#[derive(Debug)]
pub struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    /// Starts counting one unit of work.
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    /// Units running now.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until nothing is running.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

const CONTRACT_UNKNOWN: u8 = 0;
const CONTRACT_INGEST: u8 = 1;
const CONTRACT_PUSH: u8 = 2;

/// Hands events to one flow.
pub struct Delivery {
    flow: Arc<Flow>,
    /// Which export the flow has, once known.
    contract: AtomicU8,
    /// One permit per request being delivered; bounds the calls in flight below the flow's own
    /// limit.
    admission: Arc<Semaphore>,
    /// How long a request may wait for a permit before it is answered "busy".
    admission_wait: Duration,
    /// Deliveries that continue after their response went out.
    background: Arc<InFlight>,
}

/// A delivery slot; hold it for as long as the delivery runs.
pub struct Admission {
    _permit: OwnedSemaphorePermit,
}

impl Delivery {
    /// Delivers to `flow` with at most `window` requests in delivery at once. `exports` are
    /// the flow's handler names when known (a built flow's manifest lists them); otherwise the
    /// first request finds out whether `ingest` exists.
    pub fn new(
        flow: Arc<Flow>,
        window: usize,
        admission_wait: Duration,
        exports: Option<&[String]>,
    ) -> Self {
        let contract = match exports {
            None => CONTRACT_UNKNOWN,
            Some(names) if names.iter().any(|n| n == "ingest") => CONTRACT_INGEST,
            Some(_) => CONTRACT_PUSH,
        };
        Self {
            flow,
            contract: AtomicU8::new(contract),
            admission: Arc::new(Semaphore::new(window.max(1))),
            admission_wait,
            background: Arc::new(InFlight::default()),
        }
    }

    /// The flow events go to.
    pub fn flow(&self) -> &Arc<Flow> {
        &self.flow
    }

    /// Deliveries running after their response went out.
    pub fn background(&self) -> &Arc<InFlight> {
        &self.background
    }

    /// Waits for a delivery slot.
    pub async fn admit(&self) -> Result<Admission, DeliveryError> {
        match tokio::time::timeout(self.admission_wait, self.admission.clone().acquire_owned())
            .await
        {
            Ok(Ok(permit)) => Ok(Admission { _permit: permit }),
            _ => Err(DeliveryError::Busy),
        }
    }

    /// Hands a request's events to the flow and returns one outcome per event, in order, and
    /// the answer a step gave, if any.
    pub async fn deliver(
        &self,
        source: &str,
        request: &Ingest,
    ) -> Result<Delivered, DeliveryError> {
        let events = &request.events;
        if events.is_empty() {
            return Ok(Delivered::default());
        }
        if self.contract.load(Ordering::Relaxed) != CONTRACT_PUSH {
            match self.ingest(source, request).await {
                Err(DeliveryError::Call(CallError::Threw { message, .. }))
                    if message == "flow has no export \"ingest\"" =>
                {
                    tracing::info!(
                        flow = %self.flow.name(),
                        "The flow has no ingest export; delivering each event to push"
                    );
                    self.contract.store(CONTRACT_PUSH, Ordering::Relaxed);
                }
                result => {
                    if result.is_ok() {
                        self.contract.store(CONTRACT_INGEST, Ordering::Relaxed);
                    }
                    return result;
                }
            }
        }
        Ok(Delivered {
            outcomes: self.push_each(events).await,
            answer: None,
        })
    }

    async fn ingest(&self, source: &str, request: &Ingest) -> Result<Delivered, DeliveryError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Request<'a> {
            source: &'a str,
            events: &'a [Value],
            batch: bool,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            body_from_events: bool,
            scope: &'a Scope,
        }
        let events = &request.events;
        let input = serde_json::to_string(&Request {
            source,
            events,
            batch: request.batch,
            body_from_events: request.body_from_events,
            scope: &request.scope,
        })
        .map_err(|e| DeliveryError::Contract(format!("cannot encode the request: {e}")))?;
        let output = self.flow.call("ingest", &input).await?;
        let output: Value = serde_json::from_str(&output)
            .map_err(|e| DeliveryError::Contract(format!("ingest returned bad JSON: {e}")))?;
        read_ingest_output(output, events.len())
    }

    async fn push_each(&self, events: &[Value]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            let input = event.to_string();
            let outcome = match self.flow.call("push", &input).await {
                Ok(output) => match serde_json::from_str::<Value>(&output) {
                    Ok(value) => Outcome::from_result(&value),
                    Err(_) => Outcome::from_result(&Value::Null),
                },
                // A handler that throws refuses that event; its message is the reason.
                Err(CallError::Threw { message, .. }) => Outcome::failed(message),
                Err(e) => {
                    tracing::warn!(flow = %self.flow.name(), error = %e, "Push failed");
                    Outcome::failed("Event was not processed")
                }
            };
            outcomes.push(outcome);
        }
        outcomes
    }
}

/// Reads what `ingest` resolved to: an array of results, or `{results, respond?}`.
fn read_ingest_output(output: Value, events: usize) -> Result<Delivered, DeliveryError> {
    let (results, answer) = match output {
        Value::Array(results) => (results, None),
        Value::Object(mut object) => match object.remove("results") {
            Some(Value::Array(results)) => {
                let answer = object.get("respond").map(Answer::from_value);
                (results, answer)
            }
            _ => {
                return Err(DeliveryError::Contract(
                    "ingest must resolve to an array of results or {results, respond}, not an \
                     object without a `results` array"
                        .to_string(),
                ));
            }
        },
        other => {
            return Err(DeliveryError::Contract(format!(
                "ingest must resolve to an array of results, not {}",
                kind(&other)
            )));
        }
    };
    if results.len() != events {
        return Err(DeliveryError::Contract(format!(
            "ingest returned {} results for {} events",
            results.len(),
            events
        )));
    }
    Ok(Delivered {
        outcomes: results.iter().map(Outcome::from_result).collect(),
        answer,
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_are_read_leniently() {
        assert_eq!(
            Outcome::from_result(&json!({"ok": true, "id": "abc"})),
            Outcome {
                ok: true,
                id: Some("abc".into()),
                ..Outcome::default()
            }
        );
        assert_eq!(
            Outcome::from_result(&json!({"ok": true, "event": {"id": "e1"}})).id,
            Some("e1".into())
        );
        assert_eq!(
            Outcome::from_result(
                &json!({"ok": false, "error": "Event name is invalid", "invalid": true})
            ),
            Outcome {
                ok: false,
                id: None,
                error: Some("Event name is invalid".into()),
                invalid: true
            }
        );
        assert_eq!(
            Outcome::from_result(&json!({"ok": false})).error.as_deref(),
            Some("Event was not processed")
        );
        assert!(
            Outcome::from_result(&json!(null)).ok,
            "a push returning nothing accepted it"
        );
    }

    #[test]
    fn ingest_may_resolve_to_results_alone_or_with_an_answer() {
        let plain = read_ingest_output(json!([{"ok": true, "id": "a"}]), 1).unwrap();
        assert_eq!(plain.outcomes[0].id.as_deref(), Some("a"));
        assert!(plain.answer.is_none());

        let answered = read_ingest_output(
            json!({"results": [{"ok": true}], "respond": {"status": 201, "body": {"x": 1}}}),
            1,
        )
        .unwrap();
        let answer = answered.answer.unwrap().unwrap();
        assert_eq!(answer.status, StatusCode::CREATED);
        assert_eq!(answer.body, AnswerBody::Json(json!({"x": 1})));

        for (output, events, reason) in [
            (json!([]), 1, "ingest returned 0 results for 1 events"),
            (json!({"respond": {}}), 1, "without a `results` array"),
            (json!("ok"), 1, "not a string"),
        ] {
            let error = read_ingest_output(output, events).unwrap_err().to_string();
            assert!(error.contains(reason), "{error}");
        }
    }

    #[test]
    fn answers_are_read_as_the_express_source_sends_them() {
        let answer = Answer::from_value(&json!({
            "headers": {"X-One": "1", "x-many": ["a", "b"], "x-n": 2, "Content-Length": "9"},
            "body": "<p>hi</p>"
        }))
        .unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        let headers: Vec<(&str, &str)> = answer
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            headers,
            [
                ("x-one", "1"),
                ("x-many", "a"),
                ("x-many", "b"),
                ("x-n", "2")
            ]
        );
        assert_eq!(answer.body, AnswerBody::Text("<p>hi</p>".into()));

        let bytes = Answer::from_value(&json!({"body": "R0lG", "bodyEncoding": "base64"})).unwrap();
        assert_eq!(bytes.body, AnswerBody::Bytes(b"GIF".to_vec()));
        assert_eq!(
            Answer::from_value(&json!({"body": null})).unwrap().body,
            AnswerBody::Json(Value::Null)
        );
        assert_eq!(
            Answer::from_value(&json!({})).unwrap().body,
            AnswerBody::Empty
        );

        for (options, reason) in [
            (
                json!({"status": 99}),
                "status must be an integer from 200 to 999, not 99",
            ),
            (
                json!({"status": "200"}),
                "status must be a number, not a string",
            ),
            (
                json!({"headers": {"bad name": "x"}}),
                "\"bad name\" is not a valid",
            ),
            (
                json!({"headers": {"x": "a\nb"}}),
                "has a value HTTP cannot carry",
            ),
            (
                json!({"headers": {"x": {}}}),
                "must be a string, not an object",
            ),
            (
                json!({"body": "%%", "bodyEncoding": "base64"}),
                "not valid base64",
            ),
            (
                json!({"body": "x", "bodyEncoding": "hex"}),
                "must be \"base64\"",
            ),
            (json!([]), "must be an object, not an array"),
        ] {
            let error = Answer::from_value(&options).unwrap_err();
            assert!(error.contains(reason), "{options}: {error}");
        }
    }

    #[tokio::test]
    async fn in_flight_waits_for_the_last_guard() {
        let work = Arc::new(InFlight::default());
        let guard = work.enter();
        let second = work.enter();
        assert_eq!(work.count(), 2);
        drop(second);
        let waiter = {
            let work = work.clone();
            tokio::spawn(async move { work.wait_idle().await })
        };
        drop(guard);
        waiter.await.unwrap();
        assert_eq!(work.count(), 0);
    }
}
