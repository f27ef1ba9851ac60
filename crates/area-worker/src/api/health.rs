//! Liveness and readiness probes, cheap enough to be called every second:
//! liveness touches nothing, readiness costs one round trip to each of Redis
//! (PING and the groups, pipelined) and PostgreSQL.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiState, ErrorBody};

/// A reader that has not completed a read for this long is stuck. Reads block
/// for at most `AREA_BLOCK_MS` (one second by default), so a healthy reader
/// completes one every few seconds even when the stream is idle.
const STUCK_AFTER: Duration = Duration::from_secs(30);

/// Longest a dependency may take to answer a probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The answer of a probe that passed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProbeStatus {
    /// `ok` (alive) or `ready`.
    pub status: String,
}

/// `GET /healthz`: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "probes",
    responses((status = 200, description = "The process is alive", body = ProbeStatus))
)]
pub(crate) async fn healthz() -> Json<ProbeStatus> {
    Json(ProbeStatus {
        status: "ok".into(),
    })
}

/// `GET /readyz`: Redis and PostgreSQL answer, the engine started, the groups
/// exist, and every reader has made progress recently.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "probes",
    responses(
        (status = 200, description = "Ready to work", body = ProbeStatus),
        (status = 503, description = "Not ready, with the reason", body = ErrorBody),
    )
)]
pub(crate) async fn readyz(State(api): State<ApiState>) -> Result<Json<ProbeStatus>, ApiError> {
    if !api.state.is_ready() {
        return Err(ApiError::unavailable("the engine is not running"));
    }
    let streams = api.streams();
    let missing =
        match tokio::time::timeout(PROBE_TIMEOUT, api.redis.missing_groups(&streams)).await {
            Ok(Ok(missing)) => missing,
            _ => return Err(ApiError::unavailable("redis does not answer")),
        };
    match tokio::time::timeout(PROBE_TIMEOUT, api.store.ping()).await {
        Ok(Ok(())) => {}
        _ => return Err(ApiError::unavailable("postgresql does not answer")),
    }
    if !missing.is_empty() {
        return Err(ApiError::unavailable(format!(
            "the consumer group is missing on {}",
            missing.join(", ")
        )));
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
    Ok(Json(ProbeStatus {
        status: "ready".into(),
    }))
}
