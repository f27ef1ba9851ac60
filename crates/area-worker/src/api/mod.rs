//! The REST API: health, readiness and, in the modules below, the routes that
//! watch and steer the worker. Errors share one JSON shape:
//! `{"error": {"code": "...", "message": "..."}}`.

mod error;
mod health;

use std::sync::Arc;

use area_core::Registry;
use area_store::Store;
use area_stream::Redis;
use axum::Router;
use axum::routing::get;

pub use error::ApiError;

use crate::engine::EngineState;

/// What the handlers read and steer.
#[derive(Clone)]
pub struct ApiState {
    /// The database.
    pub store: Store,
    /// Redis.
    pub redis: Redis,
    /// The reactions this binary serves.
    pub registry: Registry,
    /// The engine's live state.
    pub state: Arc<EngineState>,
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(error::not_found)
        .with_state(state)
}
