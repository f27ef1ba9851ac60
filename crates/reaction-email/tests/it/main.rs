//! Integration tests of the email reaction against real SMTP peers on loopback:
//! aiosmtpd (a real SMTP server, started from `tests/smtp_sink.py`) for what
//! arrives, and a scripted SMTP peer written here for how failures are
//! classified. Every server binds port 0, so the tests run in parallel.

mod delivery;
mod failures;
mod scripted;
mod sink;

use std::time::Duration;

use area_core::event::DecodeLimits;
use area_core::{Event, ReactionContext};
use reaction_email::{EmailReaction, SmtpSettings, TlsMode};
use serde_json::{Value, json};
use uuid::Uuid;

/// The dedup key every test context carries.
pub const DEDUP_KEY: &str = "evt-42:6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab";

/// Settings for a server on 127.0.0.1:`port`.
pub fn settings(port: u16, tls: TlsMode, timeout: Duration) -> SmtpSettings {
    let mut settings = SmtpSettings::new("127.0.0.1", tls, "AREA Worker <area@example.com>");
    settings.port = port;
    settings.timeout = timeout;
    settings
}

/// A reaction for a plain-text server on 127.0.0.1:`port`.
pub fn plain_reaction(port: u16) -> EmailReaction {
    install_crypto_provider();
    EmailReaction::new(settings(port, TlsMode::None, Duration::from_secs(5))).unwrap()
}

/// The process-wide rustls provider, ring as everywhere in the workspace.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An attempt context for `config`.
pub fn context(config: Value) -> ReactionContext {
    let raw = json!({"area_id": Uuid::new_v4(), "id": "evt-42", "action": "test.send"});
    ReactionContext {
        config,
        event: Event::decode(raw.to_string().as_bytes(), "1-0", DecodeLimits::default()).unwrap(),
        execution_id: Uuid::new_v4(),
        reaction_id: Uuid::new_v4(),
        dedup_key: DEDUP_KEY.into(),
        attempt: 1,
        timeout: Duration::from_secs(30),
    }
}

/// The smallest valid config.
pub fn simple_config() -> Value {
    json!({"to": "ann@example.com", "subject": "hello", "text": "hi"})
}
