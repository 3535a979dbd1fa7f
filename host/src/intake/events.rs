//! What a request body carries: one event, or a batch (a bare array or `{"batch": [...]}`), and
//! whether each event could ever be delivered.
//!
//! The envelope rules are walkerOS `toEventList`/`isBatchBody`. The name check is the collector's
//! gate (`createEvent`), run on the host so that an event that can never be delivered is
//! answered 400 even when the response goes out before delivery.

use serde_json::{Map, Value};

/// The events of one request and the form they came in.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The events, in submission order.
    pub events: Vec<Value>,
    /// True for a batch form, whatever its length: a one-element batch still gets the batch
    /// response shape.
    pub batch: bool,
}

/// What the flow's scope gets as the request body.
#[derive(Debug, Clone, PartialEq)]
pub enum ScopeBody {
    /// No body (a pixel GET, a body that was not parsed).
    None,
    /// The body is the events themselves (one event, or a bare array); it is not sent twice.
    Events,
    /// A body that says more than its events (a `{"batch": [...]}` envelope with other keys).
    Value(Value),
}

impl Envelope {
    /// Splits a parsed body into its events. A body that is neither an object nor an array
    /// (or no body at all) yields one empty event, which only a source `before` chain could
    /// turn into something deliverable.
    pub fn from_body(body: Option<Value>) -> (Self, ScopeBody) {
        match body {
            Some(Value::Array(events)) => (
                Self {
                    events,
                    batch: true,
                },
                ScopeBody::Events,
            ),
            Some(Value::Object(mut object)) => match object.remove("batch") {
                Some(Value::Array(events)) => {
                    object.insert("batch".into(), Value::Array(events.clone()));
                    let envelope = Self {
                        events,
                        batch: true,
                    };
                    (envelope, ScopeBody::Value(Value::Object(object)))
                }
                Some(other) => {
                    object.insert("batch".into(), other);
                    (Self::single(Value::Object(object)), ScopeBody::Events)
                }
                None => (Self::single(Value::Object(object)), ScopeBody::Events),
            },
            Some(other) => (
                Self::single(Value::Object(Map::new())),
                ScopeBody::Value(other),
            ),
            None => (Self::single(Value::Object(Map::new())), ScopeBody::None),
        }
    }

    /// One event, not in a batch.
    pub fn single(event: Value) -> Self {
        Self {
            events: vec![event],
            batch: false,
        }
    }

    /// The body the events came from, rebuilt (for when they can no longer stand for it).
    pub fn to_body(&self) -> Value {
        if self.batch {
            Value::Array(self.events.clone())
        } else {
            self.events.first().cloned().unwrap_or(Value::Null)
        }
    }
}

/// Why the collector would refuse an event, in its own words.
pub fn invalid_reason(event: &Value) -> Option<&'static str> {
    let Value::Object(event) = event else {
        return Some("Event must be a JSON object");
    };
    match event.get("name") {
        None => Some("Event name is required"),
        Some(Value::String(name)) if name.is_empty() => Some("Event name is required"),
        Some(Value::String(name)) => {
            // "entity action": the first two space-separated parts must both be non-empty.
            let mut parts = name.split(' ');
            let entity = parts.next().unwrap_or("");
            let action = parts.next().unwrap_or("");
            (entity.is_empty() || action.is_empty()).then_some("Event name is invalid")
        }
        Some(_) => Some("Event name is invalid"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_forms() {
        let (single, body) = Envelope::from_body(Some(json!({"name": "page view"})));
        assert_eq!(single, Envelope::single(json!({"name": "page view"})));
        assert_eq!(body, ScopeBody::Events);

        let (array, body) = Envelope::from_body(Some(json!([{"name": "a b"}, {"name": "c d"}])));
        assert!(array.batch);
        assert_eq!(array.events.len(), 2);
        assert_eq!(body, ScopeBody::Events);
        assert_eq!(array.to_body(), json!([{"name": "a b"}, {"name": "c d"}]));

        let wrapped = json!({"batch": [{"name": "a b"}], "sentAt": 1});
        let (envelope, body) = Envelope::from_body(Some(wrapped.clone()));
        assert!(envelope.batch, "a one-element batch is still a batch");
        assert_eq!(envelope.events, vec![json!({"name": "a b"})]);
        assert_eq!(body, ScopeBody::Value(wrapped));

        let (not_a_batch, _) = Envelope::from_body(Some(json!({"name": "a b", "batch": 3})));
        assert_eq!(
            not_a_batch,
            Envelope::single(json!({"name": "a b", "batch": 3}))
        );

        let (empty, body) = Envelope::from_body(None);
        assert_eq!(empty, Envelope::single(json!({})));
        assert_eq!(body, ScopeBody::None);
        assert!(Envelope::from_body(Some(json!([]))).0.events.is_empty());
    }

    #[test]
    fn names_are_checked_as_the_collector_does() {
        assert_eq!(invalid_reason(&json!({"name": "page view"})), None);
        assert_eq!(invalid_reason(&json!({"name": "page view extra"})), None);
        assert_eq!(invalid_reason(&json!({})), Some("Event name is required"));
        assert_eq!(
            invalid_reason(&json!({"name": ""})),
            Some("Event name is required")
        );
        assert_eq!(
            invalid_reason(&json!({"name": "pageview"})),
            Some("Event name is invalid")
        );
        assert_eq!(
            invalid_reason(&json!({"name": "page  view"})),
            Some("Event name is invalid")
        );
        assert_eq!(
            invalid_reason(&json!({"name": 3})),
            Some("Event name is invalid")
        );
        assert_eq!(
            invalid_reason(&json!("page view")),
            Some("Event must be a JSON object")
        );
    }
}
