//! The call contract between the intake and a flow (see README, "The bundle contract").
//!
//! A flow that exports `ingest(request)` gets every request's events in one call, with the
//! request scope, and answers one result per event. A flow without it gets `push(event)` once
//! per event, in order. Which one a flow has is learned from the first call and remembered.
//!
//! Delivery is bounded: a request is admitted only while fewer than the window's worth of
//! deliveries are running, so a flow slower than its traffic pushes back on clients instead of
//! piling up work (or failing calls with "busy").

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;
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

/// Why a request's events could not be handed to the flow at all.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No delivery slot came free in time.
    #[error("the flow is busy; retry later")]
    Busy,
    /// The `ingest` call failed as a whole.
    #[error(transparent)]
    Call(#[from] CallError),
    /// `ingest` answered something other than one result per event.
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

    /// Hands a request's events to the flow and returns one outcome per event, in order.
    pub async fn deliver(
        &self,
        source: &str,
        request: &Ingest,
    ) -> Result<Vec<Outcome>, DeliveryError> {
        let events = &request.events;
        if events.is_empty() {
            return Ok(Vec::new());
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
        Ok(self.push_each(events).await)
    }

    async fn ingest(&self, source: &str, request: &Ingest) -> Result<Vec<Outcome>, DeliveryError> {
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
        let results: Value = serde_json::from_str(&output)
            .map_err(|e| DeliveryError::Contract(format!("ingest returned bad JSON: {e}")))?;
        match results {
            Value::Array(results) if results.len() == events.len() => {
                Ok(results.iter().map(Outcome::from_result).collect())
            }
            Value::Array(results) => Err(DeliveryError::Contract(format!(
                "ingest returned {} results for {} events",
                results.len(),
                events.len()
            ))),
            other => Err(DeliveryError::Contract(format!(
                "ingest must resolve to an array of results, not {}",
                kind(&other)
            ))),
        }
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
