//! The event contract: what a producer appends to the event stream.
//!
//! Decoding is strict where the worker depends on a field (`area_id` must be a
//! UUID, optional fields must have the documented type) and lenient elsewhere
//! (unknown fields are kept out of the way, so producers can add fields before
//! the worker knows them). Every rejection names the field, because the reason
//! ends up in the dead-letter stream where a person reads it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The producer's identifier for an event; defaults to the stream entry id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub String);

impl fmt::Display for EventId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// The AREA whose enabled reactions an event triggers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AreaId(pub Uuid);

impl fmt::Display for AreaId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}

/// One fact read from the event stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id of the event, used with the reaction id as the dedup key.
    pub id: EventId,
    /// The AREA whose reactions run.
    pub area_id: AreaId,
    /// What happened at the source, e.g. `github.push`; informative only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// When it happened at the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
    /// Groups related executions across events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The action's data, read by reaction templates; `null` when absent.
    #[serde(default)]
    pub payload: Value,
}

/// Why a stream entry is not a valid event. The message is stored with the dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The entry has no `event` field.
    #[error("the entry has no `event` field")]
    MissingEventField,
    /// The `event` field is not UTF-8.
    #[error("the event is not UTF-8 text")]
    NotUtf8,
    /// The `event` field is not JSON.
    #[error("the event is not valid JSON: {0}")]
    InvalidJson(String),
    /// The JSON is valid but not an object.
    #[error("the event must be a JSON object, found {0}")]
    NotAnObject(&'static str),
    /// A required field is missing.
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong type or format.
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The entry is larger than the configured limit.
    #[error("the event is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// Size of the `event` field in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The JSON nests deeper than the configured limit.
    #[error("the event nests deeper than {limit} levels")]
    TooDeep {
        /// The configured limit.
        limit: usize,
    },
}

impl EventError {
    /// A short stable code for the dead-letter record and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingEventField => "missing_event_field",
            Self::NotUtf8 => "not_utf8",
            Self::InvalidJson(_) => "invalid_json",
            Self::NotAnObject(_) => "not_an_object",
            Self::MissingField(_) => "missing_field",
            Self::InvalidField { .. } => "invalid_field",
            Self::TooLarge { .. } => "too_large",
            Self::TooDeep { .. } => "too_deep",
        }
    }
}

/// Bounds applied while decoding an event.
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// Largest accepted `event` field, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted nesting of arrays and objects.
    pub max_depth: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024,
            max_depth: 64,
        }
    }
}

impl Event {
    /// Decodes the `event` field of a stream entry. `entry_id` is the stream entry id,
    /// used as the event id when the producer gave none.
    pub fn decode(raw: &[u8], entry_id: &str, limits: DecodeLimits) -> Result<Self, EventError> {
        if raw.len() > limits.max_bytes {
            return Err(EventError::TooLarge {
                size: raw.len(),
                limit: limits.max_bytes,
            });
        }
        let text = std::str::from_utf8(raw).map_err(|_| EventError::NotUtf8)?;
        if nesting_depth(text) > limits.max_depth {
            return Err(EventError::TooDeep {
                limit: limits.max_depth,
            });
        }
        let value: Value =
            serde_json::from_str(text).map_err(|err| EventError::InvalidJson(err.to_string()))?;
        Self::from_value(value, entry_id)
    }

    /// Validates an already parsed JSON value against the contract.
    pub fn from_value(value: Value, entry_id: &str) -> Result<Self, EventError> {
        let mut object = match value {
            Value::Object(object) => object,
            other => return Err(EventError::NotAnObject(json_kind(&other))),
        };

        let area_id = match object.remove("area_id") {
            None | Some(Value::Null) => return Err(EventError::MissingField("area_id")),
            Some(Value::String(text)) => {
                Uuid::parse_str(&text)
                    .map(AreaId)
                    .map_err(|_| EventError::InvalidField {
                        field: "area_id",
                        reason: "not a UUID".into(),
                    })?
            }
            Some(other) => return Err(wrong_type("area_id", "a UUID string", &other)),
        };
        let id = match optional_string(&mut object, "id")? {
            Some(id) => {
                check_event_id(&id)?;
                EventId(id)
            }
            None => EventId(entry_id.to_owned()),
        };
        let action = optional_string(&mut object, "action")?;
        let occurred_at = optional_string(&mut object, "occurred_at")?
            .map(|text| {
                DateTime::parse_from_rfc3339(&text)
                    .map(|at| at.with_timezone(&Utc))
                    .map_err(|_| EventError::InvalidField {
                        field: "occurred_at",
                        reason: "not an RFC 3339 timestamp".into(),
                    })
            })
            .transpose()?;
        let correlation_id = optional_string(&mut object, "correlation_id")?
            .map(|text| {
                Uuid::parse_str(&text).map_err(|_| EventError::InvalidField {
                    field: "correlation_id",
                    reason: "not a UUID".into(),
                })
            })
            .transpose()?;
        let payload = object.remove("payload").unwrap_or(Value::Null);

        Ok(Self {
            id,
            area_id,
            action,
            occurred_at,
            correlation_id,
            payload,
        })
    }

    /// The event as the JSON object that templates see as `event`.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("an event always serializes: its fields are plain data")
    }
}

fn optional_string(
    object: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, EventError> {
    match object.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(wrong_type(field, "a string", &other)),
    }
}

/// Longest event id accepted, in bytes. The id becomes part of the dedup key
/// (a unique index entry, which PostgreSQL caps near 2.7 kB) and of the
/// `webhook-id` header, so it is kept short and printable.
pub const MAX_EVENT_ID_BYTES: usize = 256;

/// An event id is 1 to [`MAX_EVENT_ID_BYTES`] visible ASCII characters (no
/// spaces or control characters), so that it fits the dedup key's index and
/// travels unchanged in an HTTP header.
fn check_event_id(id: &str) -> Result<(), EventError> {
    let invalid = |reason: String| EventError::InvalidField {
        field: "id",
        reason,
    };
    if id.is_empty() {
        return Err(invalid("empty".into()));
    }
    if id.len() > MAX_EVENT_ID_BYTES {
        return Err(invalid(format!(
            "{} bytes long; at most {MAX_EVENT_ID_BYTES}",
            id.len()
        )));
    }
    if let Some(bad) = id.chars().find(|char| !char.is_ascii_graphic()) {
        return Err(invalid(format!(
            "contains {bad:?}; only visible ASCII characters are allowed"
        )));
    }
    Ok(())
}

fn wrong_type(field: &'static str, expected: &str, found: &Value) -> EventError {
    EventError::InvalidField {
        field,
        reason: format!("expected {expected}, found {}", json_kind(found)),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Deepest nesting of `[` and `{` outside strings. Counting before parsing keeps a
/// hostile entry from costing more than one linear scan.
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    const AREA: &str = "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab";

    fn decode(text: &str) -> Result<Event, EventError> {
        Event::decode(text.as_bytes(), "1-0", DecodeLimits::default())
    }

    #[test]
    fn event_ids_are_short_visible_ascii() {
        let with_id =
            |id: &str| decode(&serde_json::json!({"area_id": AREA, "id": id}).to_string());
        assert!(with_id("push-42:ok/Z_~").is_ok());
        assert!(with_id(&"x".repeat(MAX_EVENT_ID_BYTES)).is_ok());
        for (id, says) in [
            (String::new(), "empty"),
            ("x".repeat(MAX_EVENT_ID_BYTES + 1), "at most 256"),
            ("two\nlines".to_owned(), "'\\n'"),
            ("with space".to_owned(), "' '"),
            ("r\u{e9}sum\u{e9}".to_owned(), "'\u{e9}'"),
            ("nul\u{0}".to_owned(), "'\\0'"),
        ] {
            let error = with_id(&id).unwrap_err();
            assert_eq!(error.code(), "invalid_field", "{id:?}");
            let message = error.to_string();
            assert!(
                message.contains("`id`") && message.contains(says),
                "{id:?}: {message}"
            );
        }
    }

    #[test]
    fn accepts_minimal_event_and_defaults_id_to_entry_id() {
        let event = decode(&format!(r#"{{"area_id":"{AREA}"}}"#)).unwrap();
        assert_eq!(event.id, EventId("1-0".into()));
        assert_eq!(event.area_id.0.to_string(), AREA);
        assert_eq!(event.payload, Value::Null);
    }

    #[test]
    fn keeps_every_documented_field() {
        let text = format!(
            r#"{{"area_id":"{AREA}","id":"e1","action":"github.push","occurred_at":"2026-01-02T03:04:05+01:00","correlation_id":"{AREA}","payload":{{"a":[1,2]}},"extra":true}}"#
        );
        let event = decode(&text).unwrap();
        assert_eq!(event.id.0, "e1");
        assert_eq!(event.action.as_deref(), Some("github.push"));
        assert_eq!(
            event.occurred_at.unwrap().to_rfc3339(),
            "2026-01-02T02:04:05+00:00"
        );
        assert!(event.correlation_id.is_some());
        assert_eq!(event.payload["a"][1], 2);
    }

    #[test]
    fn rejects_what_the_contract_forbids_naming_the_field() {
        assert!(matches!(
            decode("not json"),
            Err(EventError::InvalidJson(_))
        ));
        assert!(matches!(
            decode("[1]"),
            Err(EventError::NotAnObject("an array"))
        ));
        assert_eq!(decode("{}"), Err(EventError::MissingField("area_id")));
        let bad_uuid = decode(r#"{"area_id":"nope"}"#).unwrap_err();
        assert_eq!(
            bad_uuid.to_string(),
            "field `area_id` is invalid: not a UUID"
        );
        let wrong = decode(&format!(r#"{{"area_id":"{AREA}","action":5}}"#)).unwrap_err();
        assert_eq!(
            wrong.to_string(),
            "field `action` is invalid: expected a string, found a number"
        );
        let when = decode(&format!(
            r#"{{"area_id":"{AREA}","occurred_at":"yesterday"}}"#
        ));
        assert!(matches!(
            when,
            Err(EventError::InvalidField {
                field: "occurred_at",
                ..
            })
        ));
    }

    #[test]
    fn bounds_size_and_depth_before_parsing() {
        let limits = DecodeLimits {
            max_bytes: 64,
            max_depth: 4,
        };
        let big = format!(r#"{{"area_id":"{AREA}","payload":"{}"}}"#, "x".repeat(100));
        assert!(matches!(
            Event::decode(big.as_bytes(), "1-0", limits),
            Err(EventError::TooLarge { .. })
        ));
        let deep = format!(r#"{{"area_id":"{AREA}","payload":[[[[[1]]]]]}}"#);
        let limits = DecodeLimits {
            max_bytes: 1024,
            max_depth: 4,
        };
        assert_eq!(
            Event::decode(deep.as_bytes(), "1-0", limits),
            Err(EventError::TooDeep { limit: 4 })
        );
        let brackets_in_strings = format!(r#"{{"area_id":"{AREA}","payload":"[[[[[[\"]]"}}"#);
        assert!(Event::decode(brackets_in_strings.as_bytes(), "1-0", limits).is_ok());
    }

    #[test]
    fn round_trips_through_json() {
        let event = decode(&format!(r#"{{"area_id":"{AREA}","payload":{{"k":"v"}}}}"#)).unwrap();
        let again = Event::from_value(event.to_json(), "other").unwrap();
        assert_eq!(again, event);
    }
}
