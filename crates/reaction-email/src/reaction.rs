//! [`EmailReaction`]: the `email` service of the AREA worker.

use std::fmt;

use area_core::text::truncate_on_char_boundary;
use area_core::{ConfigError, Outcome, Reaction, ReactionContext, ReactionError};
use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::response::Response;
use serde_json::{Value, json};
use tracing::{Span, debug, instrument, warn};

use crate::client::SmtpClient;
use crate::config::EmailConfig;
use crate::error::Error;
use crate::message::compose;
use crate::settings::{SmtpSettings, TlsMode};

/// The service name of this reaction in `reactions.service`.
pub const SERVICE: &str = "email";

/// Reply lines kept in the output, and the bytes kept of each.
const MAX_REPLY_LINES: usize = 10;
const MAX_REPLY_LINE_BYTES: usize = 512;

/// Sends one email per execution through the configured SMTP relay.
///
/// Build it once per process: it keeps idle connections to the relay for reuse.
pub struct EmailReaction {
    client: SmtpClient,
    from: Mailbox,
}

impl EmailReaction {
    /// Checks `settings` and prepares the client; no connection is opened yet.
    pub fn new(settings: SmtpSettings) -> Result<Self, Error> {
        if settings.host.trim().is_empty() {
            return Err(Error::EmptyHost);
        }
        if settings.timeout.is_zero() {
            return Err(Error::ZeroTimeout);
        }
        let from = settings
            .from
            .trim()
            .parse::<Mailbox>()
            .map_err(|source| Error::InvalidSender { source })?;
        if settings.tls == TlsMode::None && settings.username.is_some() {
            warn!(
                host = %settings.host,
                "SMTP credentials will be sent in plain text because the TLS mode is `none`"
            );
        }

        let client = SmtpClient::new(&settings)?;
        Ok(Self { client, from })
    }
}

impl fmt::Debug for EmailReaction {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("EmailReaction")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Reaction for EmailReaction {
    fn service(&self) -> &'static str {
        SERVICE
    }

    fn validate(&self, config: &Value) -> Result<(), ConfigError> {
        EmailConfig::parse(config).map(|_| ())
    }

    #[instrument(
        skip_all,
        fields(execution_id = %context.execution_id, attempt = context.attempt, message_id)
    )]
    async fn execute(&self, context: &ReactionContext) -> Result<Outcome, ReactionError> {
        let config = EmailConfig::parse(&context.config)?;
        let composed = compose(&config, &self.from, &context.dedup_key)?;
        Span::current().record("message_id", composed.message_id.as_str());

        let reply = match self.client.send(&composed).await {
            Ok(reply) => reply,
            Err(error) => {
                debug!(code = %error.code, is_transient = error.is_transient(), "email not sent");
                return Err(error);
            }
        };

        let code = u16::from(reply.code());
        debug!(
            reply_code = code,
            recipients = config.recipient_count(),
            "email accepted"
        );
        Ok(Outcome::new(json!({
            "message_id": composed.message_id,
            "recipients": config.recipient_count(),
            "reply": reply_json(&reply),
        })))
    }
}

/// The relay's final reply, bounded, for `output_payload`.
fn reply_json(reply: &Response) -> Value {
    let lines: Vec<&str> = reply
        .message()
        .take(MAX_REPLY_LINES)
        .map(|line| truncate_on_char_boundary(line, MAX_REPLY_LINE_BYTES).0)
        .collect();
    json!({ "code": u16::from(reply.code()), "message": lines })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use area_core::{ErrorClass, Event, event::DecodeLimits};
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn reaction_at(port: u16) -> EmailReaction {
        let mut settings = SmtpSettings::new("127.0.0.1", TlsMode::None, "AREA <area@example.com>");
        settings.port = port;
        settings.timeout = Duration::from_secs(2);
        EmailReaction::new(settings).unwrap()
    }

    fn context(config: Value) -> ReactionContext {
        let raw = json!({"area_id": Uuid::new_v4(), "id": "evt-1"}).to_string();
        ReactionContext {
            config,
            event: Event::decode(raw.as_bytes(), "1-0", DecodeLimits::default()).unwrap(),
            execution_id: Uuid::new_v4(),
            reaction_id: Uuid::new_v4(),
            dedup_key: "evt-1:r".into(),
            attempt: 1,
            timeout: Duration::from_secs(5),
        }
    }

    /// A loopback port where nothing listens: bound, then released.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn invalid_address_fails_permanently_before_any_connection() {
        let reaction = reaction_at(closed_port());
        let error = reaction
            .execute(&context(json!({
                "to": ["ok@example.com", "bad address@"], "subject": "s", "text": "t"
            })))
            .await
            .unwrap_err();
        assert_eq!(error.class, ErrorClass::Permanent);
        assert_eq!(error.code, "invalid_config", "{error:?}");
        assert!(error.message.contains("`to.1`"), "{}", error.message);
        assert!(
            error.message.contains("`bad address@`"),
            "{}",
            error.message
        );
    }

    #[tokio::test]
    async fn refused_connection_is_retryable() {
        let reaction = reaction_at(closed_port());
        let error = reaction
            .execute(&context(
                json!({"to": "a@example.com", "subject": "s", "text": "t"}),
            ))
            .await
            .unwrap_err();
        assert!(error.is_transient(), "{error:?}");
        assert_eq!(error.code, "connection_failed");
        assert!(!error.possible_duplicate);
    }

    #[test]
    fn validate_names_the_field_and_service_is_email() {
        let reaction = reaction_at(25);
        assert_eq!(reaction.service(), "email");
        let error = reaction
            .validate(&json!({"to": "a@example.com", "text": "t"}))
            .unwrap_err();
        assert_eq!(error.field, "subject");
        assert!(
            reaction
                .validate(&json!({"to": "a@example.com", "subject": "s", "html": "h"}))
                .is_ok()
        );
    }

    #[test]
    fn construction_rejects_a_bad_sender_without_naming_it() {
        let settings = SmtpSettings::new("127.0.0.1", TlsMode::None, "not a mailbox");
        let error = EmailReaction::new(settings).unwrap_err();
        assert!(matches!(error, Error::InvalidSender { .. }), "{error:?}");
        assert!(!error.to_string().contains("not a mailbox"));
    }

    #[test]
    fn reply_output_is_bounded() {
        let code = "250 OK\r\n".parse::<Response>().unwrap().code();
        let lines = (0..20)
            .map(|index| format!("{index}{}", "é".repeat(400)))
            .collect();
        let reply = reply_json(&Response::new(code, lines));
        let kept = reply["message"].as_array().unwrap();
        assert_eq!(kept.len(), MAX_REPLY_LINES);
        assert!(
            kept.iter()
                .all(|line| line.as_str().unwrap().len() <= MAX_REPLY_LINE_BYTES)
        );
        assert_eq!(reply["code"], 250);
    }
}
