//! Integration tests of the Slack reaction against a local server speaking the
//! Slack Web API ([`fake_slack`]), over real HTTP on loopback.

mod failures;
mod fake_slack;
mod posting;

use std::time::Duration;

use area_core::{AreaId, Event, EventId, ReactionContext};
use reaction_slack::{SlackReaction, SlackSettings};
use secrecy::SecretString;
use serde_json::Value;
use uuid::Uuid;

/// The token the fake accepts.
pub const TOKEN: &str = "xoxb-1111-2222-s3cr3tT0kenValue";

/// Installs ring as the process's TLS provider, as the worker does (trap 1).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Settings pointing at `api_url` with `token` and a short timeout.
pub fn settings(api_url: &str, token: &str) -> SlackSettings {
    install_crypto_provider();
    let mut settings = SlackSettings::new(SecretString::from(token));
    settings.api_url = api_url.to_owned();
    settings.timeout = Duration::from_secs(5);
    settings
}

/// A reaction talking to `api_url` with the token the fake accepts.
pub fn reaction(api_url: &str) -> SlackReaction {
    SlackReaction::new(settings(api_url, TOKEN)).expect("the reaction builds")
}

/// The context of a first attempt running `config`.
pub fn context(config: Value) -> ReactionContext {
    ReactionContext {
        config,
        event: Event {
            id: EventId("evt-1".into()),
            area_id: AreaId(Uuid::nil()),
            action: Some("github.push".into()),
            occurred_at: None,
            correlation_id: None,
            payload: Value::Null,
        },
        execution_id: Uuid::new_v4(),
        reaction_id: Uuid::new_v4(),
        dedup_key: "evt-1:reaction-1".into(),
        attempt: 1,
        timeout: Duration::from_secs(30),
    }
}
