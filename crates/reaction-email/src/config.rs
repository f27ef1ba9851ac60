//! The email reaction's configuration (`reactions.config`, already rendered by
//! the engine), checked and turned into typed recipients before any I/O.
//!
//! Every rejection names the field, and a bad address is named too: the reason
//! is stored with the execution so that the person who wrote the config can
//! fix it. Addresses are never logged.

use area_core::ConfigError;
use lettre::message::Mailbox;
use serde_json::{Map, Value};

/// Fields this crate reads; `retry` belongs to the engine and is skipped.
const KNOWN_FIELDS: [&str; 6] = ["to", "cc", "reply_to", "subject", "text", "html"];
const ENGINE_FIELDS: [&str; 1] = ["retry"];

/// A checked email configuration.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EmailConfig {
    pub(crate) to: Vec<Mailbox>,
    pub(crate) cc: Vec<Mailbox>,
    pub(crate) reply_to: Option<Mailbox>,
    pub(crate) subject: String,
    pub(crate) body: EmailBody,
}

/// The message body: plain text, HTML, or both as `multipart/alternative`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum EmailBody {
    Text(String),
    Html(String),
    Alternative { text: String, html: String },
}

impl EmailConfig {
    /// Checks `config` and parses every address in it.
    pub(crate) fn parse(config: &Value) -> Result<Self, ConfigError> {
        let fields = config
            .as_object()
            .ok_or_else(|| ConfigError::new("(root)", "the email config must be a JSON object"))?;
        reject_unknown_fields(fields)?;

        let to = mailboxes(fields, "to")?;
        if to.is_empty() {
            return Err(ConfigError::new("to", "at least one recipient is required"));
        }
        let cc = mailboxes(fields, "cc")?;
        let reply_to = match optional_string(fields, "reply_to")? {
            Some(text) => Some(mailbox(text, "reply_to")?),
            None => None,
        };

        let subject = optional_string(fields, "subject")?
            .ok_or_else(|| ConfigError::new("subject", "missing; a subject is required"))?
            .to_owned();
        let body = match (
            optional_string(fields, "text")?,
            optional_string(fields, "html")?,
        ) {
            (Some(text), Some(html)) => EmailBody::Alternative {
                text: text.to_owned(),
                html: html.to_owned(),
            },
            (Some(text), None) => EmailBody::Text(text.to_owned()),
            (None, Some(html)) => EmailBody::Html(html.to_owned()),
            (None, None) => {
                return Err(ConfigError::new(
                    "text",
                    "missing; set `text`, `html` or both",
                ));
            }
        };

        Ok(Self {
            to,
            cc,
            reply_to,
            subject,
            body,
        })
    }

    /// How many envelope recipients the message has.
    pub(crate) fn recipient_count(&self) -> usize {
        self.to.len() + self.cc.len()
    }
}

fn reject_unknown_fields(fields: &Map<String, Value>) -> Result<(), ConfigError> {
    let unknown = fields.keys().find(|key| {
        !KNOWN_FIELDS.contains(&key.as_str()) && !ENGINE_FIELDS.contains(&key.as_str())
    });
    match unknown {
        Some(key) => Err(ConfigError::new(
            key.clone(),
            format!(
                "unknown field; the email reaction reads {}",
                KNOWN_FIELDS.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

fn optional_string<'a>(
    fields: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, ConfigError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(ConfigError::new(
            field,
            format!("must be a string, found {}", kind(other)),
        )),
    }
}

/// A field holding one address or a list of them.
fn mailboxes(fields: &Map<String, Value>, field: &str) -> Result<Vec<Mailbox>, ConfigError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![mailbox(text, field)?]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let path = format!("{field}.{index}");
                match item {
                    Value::String(text) => mailbox(text, &path),
                    other => Err(ConfigError::new(
                        path,
                        format!("must be a string, found {}", kind(other)),
                    )),
                }
            })
            .collect(),
        Some(other) => Err(ConfigError::new(
            field,
            format!(
                "must be a string or a list of strings, found {}",
                kind(other)
            ),
        )),
    }
}

fn mailbox(text: &str, field: &str) -> Result<Mailbox, ConfigError> {
    text.trim().parse::<Mailbox>().map_err(|error| {
        ConfigError::new(
            field,
            format!("`{text}` is not a valid email address ({error})"),
        )
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field_of(config: Value) -> String {
        EmailConfig::parse(&config).unwrap_err().field
    }

    #[test]
    fn accepts_a_string_or_a_list_of_recipients() {
        let one = EmailConfig::parse(&json!({"to": "a@example.com", "subject": "s", "text": "t"}))
            .unwrap();
        assert_eq!(one.to.len(), 1);
        assert_eq!(one.body, EmailBody::Text("t".into()));

        let many = EmailConfig::parse(&json!({
            "to": ["Ann <a@example.com>", "b@example.com"],
            "cc": "c@example.com",
            "reply_to": "r@example.com",
            "subject": "s",
            "text": "t",
            "html": "<p>t</p>",
            "retry": {"max_retries": 3},
        }))
        .unwrap();
        assert_eq!(many.to[0].name.as_deref(), Some("Ann"));
        assert_eq!(many.recipient_count(), 3);
        assert!(many.reply_to.is_some());
        assert!(matches!(many.body, EmailBody::Alternative { .. }));
    }

    #[test]
    fn each_invalid_field_is_named() {
        assert_eq!(field_of(json!({"subject": "s", "text": "t"})), "to");
        assert_eq!(
            field_of(json!({"to": [], "subject": "s", "text": "t"})),
            "to"
        );
        assert_eq!(
            field_of(json!({"to": 7, "subject": "s", "text": "t"})),
            "to"
        );
        assert_eq!(
            field_of(json!({"to": ["a@x.org", 1], "subject": "s", "text": "t"})),
            "to.1"
        );
        assert_eq!(
            field_of(json!({"to": "a@x.org", "cc": {}, "subject": "s", "text": "t"})),
            "cc"
        );
        assert_eq!(
            field_of(
                json!({"to": "a@x.org", "reply_to": ["r@x.org"], "subject": "s", "text": "t"})
            ),
            "reply_to"
        );
        assert_eq!(field_of(json!({"to": "a@x.org", "text": "t"})), "subject");
        assert_eq!(
            field_of(json!({"to": "a@x.org", "subject": 3, "text": "t"})),
            "subject"
        );
        assert_eq!(field_of(json!({"to": "a@x.org", "subject": "s"})), "text");
        assert_eq!(
            field_of(json!({"to": "a@x.org", "subject": "s", "html": false})),
            "html"
        );
        assert_eq!(field_of(json!("to a@x.org")), "(root)");
    }

    #[test]
    fn unknown_fields_are_named_but_retry_is_left_to_the_engine() {
        let error = EmailConfig::parse(&json!({
            "to": "a@x.org", "subject": "s", "text": "t", "bcc": "b@x.org"
        }))
        .unwrap_err();
        assert_eq!(error.field, "bcc");
        assert!(error.to_string().contains("unknown field"), "{error}");
        assert!(
            EmailConfig::parse(
                &json!({"to": "a@x.org", "subject": "s", "text": "t", "retry": null})
            )
            .is_ok()
        );
    }

    #[test]
    fn invalid_addresses_are_named_with_their_field() {
        let error = EmailConfig::parse(&json!({
            "to": ["ok@example.com", "not-an-address"], "subject": "s", "text": "t"
        }))
        .unwrap_err();
        assert_eq!(error.field, "to.1");
        assert!(error.reason.contains("`not-an-address`"), "{error}");

        for bad in [
            "a@example.com, b@example.com",
            "a@example.com junk",
            "<a@example.com",
            "",
        ] {
            let error = EmailConfig::parse(
                &json!({"to": "x@example.com", "cc": bad, "subject": "s", "text": "t"}),
            )
            .unwrap_err();
            assert_eq!(error.field, "cc", "{bad:?} should be rejected");
        }
    }
}
