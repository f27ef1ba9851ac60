//! What PostgreSQL cannot store, made storable.
//!
//! PostgreSQL rejects U+0000 in `text` and `jsonb`. The documented policy is to
//! replace it with U+FFFD (the replacement character) in every string and key
//! of an event before it is stored, and in every output and error of an
//! attempt, so that such input runs instead of failing in a loop or being lost.

use area_core::Event;
use serde_json::Value;

/// Replaces U+0000 in the event's id, action and payload.
pub(crate) fn sanitize_event(event: &mut Event) {
    replace_nul(&mut event.id.0);
    if let Some(action) = &mut event.action {
        replace_nul(action);
    }
    sanitize_value(&mut event.payload);
}

/// Replaces U+0000 in every string and key of `value`.
pub(crate) fn sanitize_value(value: &mut Value) {
    match value {
        Value::String(text) => replace_nul(text),
        Value::Array(items) => items.iter_mut().for_each(sanitize_value),
        Value::Object(fields) => {
            if fields.keys().any(|key| key.contains('\0')) {
                let cleaned = std::mem::take(fields)
                    .into_iter()
                    .map(|(key, value)| (key.replace('\0', "\u{FFFD}"), value))
                    .collect();
                *fields = cleaned;
            }
            fields.values_mut().for_each(sanitize_value);
        }
        _ => {}
    }
}

fn replace_nul(text: &mut String) {
    if text.contains('\0') {
        *text = text.replace('\0', "\u{FFFD}");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn replaces_nul_in_strings_and_keys() {
        let mut value = json!({"a\u{0}": ["x\u{0}y", {"k": "\u{0}"}], "n": 1});
        sanitize_value(&mut value);
        assert_eq!(
            value,
            json!({"a\u{FFFD}": ["x\u{FFFD}y", {"k": "\u{FFFD}"}], "n": 1})
        );
    }
}
