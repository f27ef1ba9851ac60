//! Integration tests of the webhook reaction against real HTTP peers on
//! loopback: an axum receiver that records what it gets, and raw TCP servers
//! for the misbehaving ones (silent, endless, trickling).

mod classification;
mod delivery;
mod destinations;
mod peers;
mod signature;

use std::time::Duration;

use area_core::{AreaId, Event, EventId, ReactionContext, ReactionError};
use reaction_webhook::{WebhookReaction, WebhookSettings, parse_allow_list};
use serde_json::{Value, json};
use uuid::Uuid;

/// The dedup key every test context carries.
pub const DEDUP_KEY: &str = "evt-1:2b1c2d3e-0000-4000-8000-000000000001";

/// Installs ring as the process's TLS provider, as the worker does (trap 1).
/// The reaction does not need it, but anything else in the process might.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Settings allowing `allow` (comma-separated), with a short default timeout.
pub fn settings(allow: &str) -> WebhookSettings {
    install_crypto_provider();
    WebhookSettings {
        allow: parse_allow_list(allow).expect("the test allow-list parses"),
        timeout: Duration::from_secs(5),
        ..WebhookSettings::default()
    }
}

/// A reaction that may reach the loopback receivers (127.0.0.1 only).
pub fn loopback_reaction() -> WebhookReaction {
    WebhookReaction::new(settings("127.0.0.1")).expect("the reaction builds")
}

/// A reaction with `settings`.
pub fn reaction_with(settings: WebhookSettings) -> WebhookReaction {
    WebhookReaction::new(settings).expect("the reaction builds")
}

/// The event of every test context.
pub fn event() -> Event {
    Event {
        id: EventId("evt-1".into()),
        area_id: AreaId(Uuid::nil()),
        action: Some("github.push".into()),
        occurred_at: None,
        correlation_id: None,
        payload: json!({"repository": "area", "pusher": "ada", "note": "héllo"}),
    }
}

/// The context of a first attempt running `config`.
pub fn context(config: Value) -> ReactionContext {
    ReactionContext {
        config,
        event: event(),
        execution_id: Uuid::new_v4(),
        reaction_id: Uuid::new_v4(),
        dedup_key: DEDUP_KEY.into(),
        attempt: 1,
        timeout: Duration::from_secs(30),
    }
}

/// Unwraps the error of an attempt that must have failed.
pub fn expect_error(result: Result<area_core::Outcome, ReactionError>) -> ReactionError {
    match result {
        Ok(outcome) => panic!("the attempt should have failed, got {:?}", outcome.output),
        Err(error) => error,
    }
}
