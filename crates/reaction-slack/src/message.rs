//! A reaction row's rendered `config`, checked and turned into the message to post.
//!
//! The config holds `channel` (required), `text` (required unless `blocks` is a
//! non-empty array), `blocks` (Block Kit blocks, passed to Slack untouched) and
//! `thread_ts`. Optional fields may be `null`, meaning absent. Unknown fields are
//! rejected by name, so a typo such as `thread` fails loudly instead of posting
//! outside the thread; `retry` is the engine's per-reaction retry policy and is
//! left to it.

use serde_json::{Map, Value};

use area_core::ConfigError;

/// The longest text Slack accepts in full; it truncates anything longer, so we
/// cut first, on a character boundary, and say so in the output.
pub const MAX_TEXT_CHARS: usize = 40_000;

const KNOWN_FIELDS: [&str; 4] = ["channel", "text", "blocks", "thread_ts"];
const ENGINE_FIELDS: [&str; 1] = ["retry"];

/// The message a config describes, borrowed from the config.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Message<'a> {
    pub channel: &'a str,
    pub text: Option<&'a str>,
    pub blocks: Option<&'a Value>,
    pub thread_ts: Option<&'a str>,
}

impl<'a> Message<'a> {
    /// Reads and checks `config`; the error names the first bad field.
    pub fn from_config(config: &'a Value) -> Result<Self, ConfigError> {
        let Value::Object(fields) = config else {
            return Err(ConfigError::new("config", "must be a JSON object"));
        };
        if let Some(unknown) = fields.keys().find(|key| {
            !KNOWN_FIELDS.contains(&key.as_str()) && !ENGINE_FIELDS.contains(&key.as_str())
        }) {
            return Err(ConfigError::new(unknown.as_str(), "unknown field"));
        }

        let channel = match fields.get("channel") {
            None | Some(Value::Null) => return Err(ConfigError::new("channel", "is required")),
            Some(value) => non_empty_string(value, "channel")?,
        };
        let blocks = optional(fields, "blocks").map(check_blocks).transpose()?;
        let thread_ts = optional(fields, "thread_ts")
            .map(|value| non_empty_string(value, "thread_ts"))
            .transpose()?;
        let text = optional(fields, "text")
            .map(|value| string(value, "text"))
            .transpose()?;

        let has_blocks = blocks.is_some_and(|blocks| !blocks_are_empty(blocks));
        if !has_blocks && text.is_none_or(|text| text.trim().is_empty()) {
            return Err(ConfigError::new(
                "text",
                "is required and must not be empty unless `blocks` has at least one block",
            ));
        }

        Ok(Self {
            channel,
            text,
            blocks,
            thread_ts,
        })
    }
}

fn optional<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|value| !value.is_null())
}

fn string<'a>(value: &'a Value, field: &str) -> Result<&'a str, ConfigError> {
    value
        .as_str()
        .ok_or_else(|| ConfigError::new(field, format!("must be a string, found {}", kind(value))))
}

fn non_empty_string<'a>(value: &'a Value, field: &str) -> Result<&'a str, ConfigError> {
    let text = string(value, field)?;
    if text.trim().is_empty() {
        return Err(ConfigError::new(field, "must not be empty"));
    }
    Ok(text)
}

fn check_blocks(value: &Value) -> Result<&Value, ConfigError> {
    let Value::Array(blocks) = value else {
        return Err(ConfigError::new(
            "blocks",
            format!(
                "must be an array of Block Kit blocks, found {}",
                kind(value)
            ),
        ));
    };
    if let Some(index) = blocks.iter().position(|block| !block.is_object()) {
        return Err(ConfigError::new(
            format!("blocks.{index}"),
            format!(
                "must be a Block Kit block object, found {}",
                kind(&blocks[index])
            ),
        ));
    }
    Ok(value)
}

fn blocks_are_empty(blocks: &Value) -> bool {
    blocks.as_array().is_none_or(Vec::is_empty)
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
    use serde_json::json;

    use super::*;

    fn field_of(config: Value) -> String {
        Message::from_config(&config)
            .expect_err("the config is invalid")
            .field
    }

    #[test]
    fn reads_every_field() {
        let config = json!({
            "channel": "C123",
            "text": "deployed",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}],
            "thread_ts": "1712345678.000100",
        });
        let message = Message::from_config(&config).unwrap();
        assert_eq!(message.channel, "C123");
        assert_eq!(message.text, Some("deployed"));
        assert_eq!(message.blocks, Some(&config["blocks"]));
        assert_eq!(message.thread_ts, Some("1712345678.000100"));
    }

    #[test]
    fn channel_is_a_required_non_empty_string() {
        assert_eq!(field_of(json!({"text": "hi"})), "channel");
        assert_eq!(field_of(json!({"channel": null, "text": "hi"})), "channel");
        assert_eq!(field_of(json!({"channel": " ", "text": "hi"})), "channel");
        assert_eq!(field_of(json!({"channel": 42, "text": "hi"})), "channel");
    }

    #[test]
    fn text_is_required_unless_blocks_are_given() {
        assert_eq!(field_of(json!({"channel": "C1"})), "text");
        assert_eq!(field_of(json!({"channel": "C1", "text": ""})), "text");
        assert_eq!(field_of(json!({"channel": "C1", "blocks": []})), "text");
        assert_eq!(field_of(json!({"channel": "C1", "text": ["hi"]})), "text");
        let blocks_only = json!({"channel": "C1", "blocks": [{"type": "divider"}]});
        assert_eq!(Message::from_config(&blocks_only).unwrap().text, None);
    }

    #[test]
    fn blocks_must_be_an_array_of_objects() {
        assert_eq!(
            field_of(json!({"channel": "C1", "text": "t", "blocks": "[]"})),
            "blocks"
        );
        assert_eq!(
            field_of(json!({"channel": "C1", "text": "t", "blocks": [{"type": "divider"}, 3]})),
            "blocks.1"
        );
    }

    #[test]
    fn thread_ts_must_be_a_string() {
        let config = json!({"channel": "C1", "text": "t", "thread_ts": 1712345678.0001});
        assert_eq!(field_of(config), "thread_ts");
        let absent = json!({"channel": "C1", "text": "t", "thread_ts": null});
        assert_eq!(Message::from_config(&absent).unwrap().thread_ts, None);
    }

    #[test]
    fn unknown_fields_are_named_but_retry_belongs_to_the_engine() {
        let error = Message::from_config(&json!({"channel": "C1", "text": "t", "thread": "1"}))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid config field `thread`: unknown field"
        );
        let with_retry = json!({"channel": "C1", "text": "t", "retry": {"max_retries": 5}});
        assert!(Message::from_config(&with_retry).is_ok());
    }

    #[test]
    fn config_must_be_an_object() {
        assert_eq!(field_of(json!(["C1", "hi"])), "config");
    }
}
