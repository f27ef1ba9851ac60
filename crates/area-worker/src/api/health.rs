//! Liveness and readiness probes, cheap enough to be called every second.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{ApiError, ApiState};

/// A reader that has not completed a read for this long is stuck.
const STUCK_AFTER: Duration = Duration::from_secs(30);

/// `GET /healthz`: the process answers.
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: Redis and PostgreSQL answer, the engine started, and every
/// reader has made progress recently.
pub(crate) async fn readyz(State(api): State<ApiState>) -> Result<Json<Value>, ApiError> {
    if !api.state.is_ready() {
        return Err(ApiError::unavailable("the engine is not running"));
    }
    let probe = Duration::from_secs(2);
    match tokio::time::timeout(probe, api.redis.ping()).await {
        Ok(Ok(())) => {}
        _ => return Err(ApiError::unavailable("redis does not answer")),
    }
    match tokio::time::timeout(probe, api.store.ping()).await {
        Ok(Ok(())) => {}
        _ => return Err(ApiError::unavailable("postgresql does not answer")),
    }
    let stuck: Vec<String> = api
        .state
        .progress()
        .into_iter()
        .filter(|reader| reader.idle_ms > STUCK_AFTER.as_millis() as u64)
        .map(|reader| reader.stream)
        .collect();
    if !stuck.is_empty() && !api.state.is_paused() {
        return Err(ApiError::unavailable(format!(
            "no progress on {}",
            stuck.join(", ")
        )));
    }
    Ok(Json(json!({"status": "ready"})))
}
