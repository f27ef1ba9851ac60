//! How a failed SMTP attempt becomes a [`ReactionError`]: by reply code and by
//! how far the conversation got, never by the text of a reply.
//!
//! - A 4xx reply is retryable and a 5xx reply permanent, with the code kept
//!   (`smtp_450`, `smtp_550`), read through lettre's typed accessors.
//! - A TLS failure is permanent: a certificate the relay will present again,
//!   or a relay that does not speak TLS where we expect it (`tls_mismatch`).
//! - A relay that accepts the connection and never greets is permanent too: it
//!   is almost always an implicit-TLS port configured as `starttls` or `none`.
//! - Any other I/O failure or timeout is retryable. Once the message data has
//!   started to go out, the relay may have accepted it before the connection
//!   broke, so the error is marked as a possible duplicate.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use area_core::ReactionError;
use area_core::text::truncate_chars;
use lettre::transport::smtp::Error as SmtpError;
use secrecy::{ExposeSecret, SecretString};

/// Longest server text kept in an error message, in characters.
const MAX_DETAIL_CHARS: usize = 400;

/// How far an attempt got; failures are classified by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Opening the TCP connection.
    Connect,
    /// In `tls` mode: opening the connection, the TLS handshake, the greeting
    /// and EHLO, which lettre does in one call.
    TlsConnect,
    /// Connected, waiting for the first byte of the greeting.
    AwaitGreeting,
    /// Reading the greeting and sending EHLO.
    Hello,
    /// Upgrading with STARTTLS.
    StartTls,
    /// Logging in.
    Auth,
    /// Checking that a pooled connection is still alive.
    Reuse,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`, for the recipient at this position (1-based).
    Rcpt(usize),
    /// The `DATA` command, before any message byte is sent.
    DataCommand,
    /// Sending the message and waiting for the final reply.
    Message,
}

impl Stage {
    /// Whether the relay may have the message even though the attempt failed.
    fn may_have_delivered(self) -> bool {
        matches!(self, Self::Message)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect => formatter.write_str("connecting"),
            Self::TlsConnect => formatter.write_str("connecting with TLS"),
            Self::AwaitGreeting => formatter.write_str("waiting for the greeting"),
            Self::Hello => formatter.write_str("greeting and EHLO"),
            Self::StartTls => formatter.write_str("STARTTLS"),
            Self::Auth => formatter.write_str("authentication"),
            Self::Reuse => formatter.write_str("checking a pooled connection"),
            Self::Mail => formatter.write_str("MAIL FROM"),
            Self::Rcpt(position) => write!(formatter, "RCPT TO (recipient {position})"),
            Self::DataCommand => formatter.write_str("DATA"),
            Self::Message => formatter.write_str("the message data"),
        }
    }
}

/// Removes the username and password from text that came from the relay or
/// from lettre, so that no error message can carry them.
pub(crate) struct Redactor {
    username: Option<String>,
    password: Option<SecretString>,
}

impl Redactor {
    /// Redacts the given credentials.
    pub(crate) fn new(username: Option<String>, password: Option<SecretString>) -> Self {
        Self { username, password }
    }

    /// `text` with every occurrence of a credential replaced, cut to a bounded length.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut scrubbed = text.to_owned();
        // The password first: a username contained in the password must not
        // leave the rest of the password behind.
        let password = self.password.as_ref().map(|secret| secret.expose_secret());
        for secret in [password, self.username.as_deref()].into_iter().flatten() {
            if !secret.is_empty() {
                scrubbed = scrubbed.replace(secret, "[redacted]");
            }
        }
        let (kept, was_cut) = truncate_chars(&scrubbed, MAX_DETAIL_CHARS);
        if was_cut {
            format!("{kept}…")
        } else {
            scrubbed
        }
    }
}

/// Classifies a failure reported by lettre at `stage`.
pub(crate) fn smtp_failure(error: &SmtpError, stage: Stage, redactor: &Redactor) -> ReactionError {
    let detail = redactor.scrub(&root_cause(error));

    if let Some(code) = error.status() {
        let number = u16::from(code);
        let message = format!("the server refused {stage} with {number}: {detail}");
        if error.is_transient() {
            return ReactionError::retryable(format!("smtp_{number}"), message);
        }
        if error.is_permanent() {
            return ReactionError::permanent(format!("smtp_{number}"), message);
        }
    }

    if let Some(tls_error) = rustls_error(error) {
        return tls_failure(tls_error, stage, &detail);
    }
    if error.is_client() {
        return ReactionError::permanent("smtp_client", format!("{stage} failed: {detail}"));
    }

    let code = if matches!(stage, Stage::Connect | Stage::TlsConnect) {
        "connection_failed"
    } else {
        "connection_lost"
    };
    let failure = ReactionError::retryable(code, format!("{stage} failed: {detail}"));
    if stage.may_have_delivered() {
        failure.with_possible_duplicate()
    } else {
        failure
    }
}

/// Classifies a step that took longer than `timeout` at `stage`.
pub(crate) fn timed_out(stage: Stage, timeout: Duration) -> ReactionError {
    match stage {
        Stage::AwaitGreeting => ReactionError::permanent(
            "tls_mismatch",
            format!(
                "the server accepted the connection but sent no greeting within {timeout:?}; \
                 the port probably expects implicit TLS (set the TLS mode to `tls`)"
            ),
        ),
        Stage::Message => ReactionError::retryable(
            "timeout",
            format!("no reply to the message data within {timeout:?}"),
        )
        .with_possible_duplicate(),
        _ => ReactionError::retryable("timeout", format!("{stage} took longer than {timeout:?}")),
    }
}

/// The relay does not offer STARTTLS although the mode requires it.
pub(crate) fn starttls_unavailable() -> ReactionError {
    ReactionError::permanent(
        "smtp_tls",
        "the server does not offer STARTTLS, and the TLS mode `starttls` forbids sending in \
         plain text; check the port, or use `tls` for an implicit-TLS port",
    )
}

fn tls_failure(tls_error: &rustls::Error, stage: Stage, detail: &str) -> ReactionError {
    let is_not_tls = matches!(
        tls_error,
        rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. }
    );
    if is_not_tls {
        ReactionError::permanent(
            "tls_mismatch",
            format!(
                "{stage}: the server did not answer with TLS ({detail}); the port probably \
                 expects plain SMTP or STARTTLS (set the TLS mode to `starttls` or `none`)"
            ),
        )
    } else {
        ReactionError::permanent("smtp_tls", format!("{stage}: TLS failed: {detail}"))
    }
}

/// The innermost cause of a lettre error, which carries the useful part: the
/// reply text for a refusal, the I/O or TLS failure otherwise. (lettre's own
/// `Display` repeats its kind once per wrapping layer.)
fn root_cause(error: &SmtpError) -> String {
    let mut innermost: &dyn StdError = error;
    while let Some(inner) = innermost.source() {
        innermost = inner;
    }
    innermost.to_string()
}

/// The rustls error behind a failure, if any. tokio-rustls wraps it in an
/// `io::Error`, whose `source()` skips it, so `get_ref` is needed as well.
fn rustls_error(error: &SmtpError) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(inner) = cause {
        if let Some(tls_error) = inner.downcast_ref::<rustls::Error>() {
            return Some(tls_error);
        }
        if let Some(io_error) = inner.downcast_ref::<std::io::Error>()
            && let Some(wrapped) = io_error.get_ref()
            && let Some(tls_error) = wrapped.downcast_ref::<rustls::Error>()
        {
            return Some(tls_error);
        }
        cause = inner.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use area_core::ErrorClass;

    use super::*;

    #[test]
    fn scrub_removes_credentials_and_bounds_length() {
        let redactor = Redactor::new(
            Some("mailer@example.com".into()),
            Some(SecretString::from("pa55-mailer@example.com-word")),
        );
        let scrubbed = redactor
            .scrub("535 bad login for mailer@example.com with pa55-mailer@example.com-word");
        assert!(!scrubbed.contains("mailer@example.com"), "{scrubbed}");
        assert!(!scrubbed.contains("pa55"), "{scrubbed}");
        assert_eq!(
            redactor.scrub(&"x".repeat(1000)).chars().count(),
            MAX_DETAIL_CHARS + 1
        );
    }

    #[test]
    fn silent_greeting_is_permanent_but_a_silent_data_reply_may_have_delivered() {
        let silent = timed_out(Stage::AwaitGreeting, Duration::from_millis(300));
        assert_eq!(silent.class, ErrorClass::Permanent);
        assert_eq!(silent.code, "tls_mismatch");

        let data = timed_out(Stage::Message, Duration::from_secs(1));
        assert!(data.is_transient() && data.possible_duplicate);

        let rcpt = timed_out(Stage::Rcpt(2), Duration::from_secs(1));
        assert!(rcpt.is_transient() && !rcpt.possible_duplicate);
        assert!(rcpt.message.contains("recipient 2"), "{}", rcpt.message);
    }
}
