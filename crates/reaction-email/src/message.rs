//! Turns a checked [`EmailConfig`] into the bytes sent after `DATA`, with a
//! Message-ID we generate (so the execution can record it) and the dedup key
//! as an idempotency hint for whoever reads the mail.
//!
//! lettre encodes non-ASCII headers as RFC 2047 encoded words and picks 7bit,
//! quoted-printable or base64 for each body, so the message is always ASCII
//! and needs no 8BITMIME from the relay.

use area_core::ReactionError;
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use uuid::Uuid;

use crate::config::{EmailBody, EmailConfig};

/// The header carrying [`area_core::ReactionContext::dedup_key`].
pub const DEDUP_KEY_HEADER: &str = "X-Area-Dedup-Key";

/// A message ready for the SMTP transaction.
#[derive(Debug)]
pub(crate) struct Composed {
    /// The Message-ID header's value, angle brackets included.
    pub(crate) message_id: String,
    /// Envelope sender and recipients (`to` and `cc`).
    pub(crate) envelope: Envelope,
    /// The formatted message, headers and body.
    pub(crate) data: Vec<u8>,
}

/// Builds the message for `config`, sent by `from`.
pub(crate) fn compose(
    config: &EmailConfig,
    from: &Mailbox,
    dedup_key: &str,
) -> Result<Composed, ReactionError> {
    let message_id = format!("<{}@{}>", Uuid::new_v4().simple(), from.email.domain());

    let mut builder = Message::builder()
        .from(from.clone())
        .subject(config.subject.as_str())
        .message_id(Some(message_id.clone()))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str(DEDUP_KEY_HEADER),
            dedup_key.to_owned(),
        ));
    for mailbox in &config.to {
        builder = builder.to(mailbox.clone());
    }
    for mailbox in &config.cc {
        builder = builder.cc(mailbox.clone());
    }
    if let Some(mailbox) = &config.reply_to {
        builder = builder.reply_to(mailbox.clone());
    }

    let built = match &config.body {
        EmailBody::Text(text) => builder.singlepart(SinglePart::plain(text.clone())),
        EmailBody::Html(html) => builder.singlepart(SinglePart::html(html.clone())),
        EmailBody::Alternative { text, html } => builder.multipart(
            MultiPart::alternative_plain_html(text.clone(), html.clone()),
        ),
    };
    let message = built.map_err(|error| {
        ReactionError::permanent(
            "invalid_message",
            format!("cannot build the message: {error}"),
        )
    })?;

    Ok(Composed {
        message_id,
        envelope: message.envelope().clone(),
        data: message.formatted(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn composed(config: serde_json::Value) -> (Composed, String) {
        let config = EmailConfig::parse(&config).unwrap();
        let from: Mailbox = "AREA <area@example.com>".parse().unwrap();
        let composed = compose(&config, &from, "evt-1:6f1c2d3e").unwrap();
        let text = String::from_utf8(composed.data.clone()).unwrap();
        (composed, text)
    }

    #[test]
    fn sets_message_id_dedup_key_and_envelope() {
        let (composed, text) = composed(json!({
            "to": ["a@example.com", "b@example.com"], "cc": "c@example.com",
            "subject": "hello", "text": "body",
        }));
        assert!(composed.message_id.starts_with('<'));
        assert!(composed.message_id.ends_with("@example.com>"));
        assert!(
            text.contains(&format!("Message-ID: {}", composed.message_id)),
            "{text}"
        );
        assert!(text.contains("X-Area-Dedup-Key: evt-1:6f1c2d3e"), "{text}");
        assert_eq!(composed.envelope.to().len(), 3);
        assert_eq!(
            composed.envelope.from().unwrap().to_string(),
            "area@example.com"
        );
    }

    #[test]
    fn non_ascii_content_is_sent_as_ascii() {
        let (composed, text) = composed(json!({
            "to": "a@example.com", "subject": "Résumé ✅ 東京", "text": "héllo 東京",
        }));
        assert!(composed.data.is_ascii(), "{text}");
        assert!(
            text.contains("=?utf-8?"),
            "the subject should be an encoded word: {text}"
        );
    }

    #[test]
    fn header_injection_through_the_subject_is_neutralised() {
        let (_, text) = composed(json!({
            "to": "a@example.com", "subject": "hi\r\nBcc: evil@example.com", "text": "t",
        }));
        assert!(
            !text.lines().any(|line| line.starts_with("Bcc:")),
            "a new header line was injected: {text}"
        );
    }
}
