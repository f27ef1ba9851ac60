//! The event and attempt contexts every conformance case runs with.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::event::{AreaId, Event, EventId};
use crate::reaction::ReactionContext;

/// The id of [`sample_event`].
pub const SAMPLE_EVENT_ID: &str = "evt-conformance-1";

/// The dedup key of every context built by [`context`].
pub const SAMPLE_DEDUP_KEY: &str = "evt-conformance-1:0b0e0c0a-0000-4000-8000-000000000001";

/// The attempt timeout of [`context`]: long enough for any loopback peer.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The event every conformance context carries; templates read its payload:
/// `payload.repository`, `payload.user.name`, `payload.user.email`,
/// `payload.count`.
pub fn sample_event() -> Event {
    Event {
        id: EventId(SAMPLE_EVENT_ID.into()),
        area_id: AreaId(Uuid::from_u128(0x6f1c_2d3e_4a5b_4c6d_8e7f_0123_4567_89ab)),
        action: Some("github.push".into()),
        occurred_at: None,
        correlation_id: None,
        payload: json!({
            "repository": "area",
            "user": {"name": "Ada", "email": "ada@example.com"},
            "count": 3,
        }),
    }
}

/// The context of a first attempt running `config` for [`sample_event`].
pub fn context(config: Value) -> ReactionContext {
    context_with_timeout(config, DEFAULT_ATTEMPT_TIMEOUT)
}

/// As [`context`], with an attempt timeout of `timeout`.
pub fn context_with_timeout(config: Value, timeout: Duration) -> ReactionContext {
    ReactionContext {
        config,
        event: sample_event(),
        execution_id: Uuid::new_v4(),
        reaction_id: Uuid::new_v4(),
        dedup_key: SAMPLE_DEDUP_KEY.into(),
        attempt: 1,
        timeout,
    }
}
