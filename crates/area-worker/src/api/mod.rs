//! The REST API that watches and steers the worker: probes, Prometheus
//! metrics, worker status and statistics, stream information, pause and
//! resume, publishing events, executions (list, show, cancel, retry) and dead
//! letters (list, redrive), with its OpenAPI document at `/api/openapi.json`.
//!
//! Every answer is JSON (but `/metrics`), and every error has one shape:
//! `{"error": {"code": "...", "message": "..."}}`. Read routes are open;
//! mutating routes go through [`auth`], which also refuses cross-site browser
//! requests, and take JSON only as `application/json`. Request bodies are
//! limited in size.
//! Requests are logged with their method, path, status and latency, never
//! their bodies or headers; internal errors are logged once, by middleware.

pub mod auth;
pub mod client;
mod dead_letters;
mod error;
mod events;
mod executions;
mod extract;
mod health;
pub mod metrics;
mod openapi;
mod worker;

use std::sync::Arc;

use area_core::{DecodeLimits, Registry};
use area_store::Store;
use area_stream::Redis;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnRequest, DefaultOnResponse, MakeSpan, TraceLayer};
use tracing::Level;

pub use auth::MutationAccess;
pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use openapi::ApiDoc;

use crate::engine::EngineState;

/// Bodies the API accepts beyond the largest event: room for the JSON of a
/// cancel reason and the like.
const BODY_HEADROOM: usize = 16 * 1024;

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
    /// This worker's consumer name.
    pub worker: String,
    /// Who may call mutating routes.
    pub access: MutationAccess,
    /// The process's metrics.
    pub metrics: PrometheusHandle,
    /// Bounds on published events, as the engine applies them.
    pub decode_limits: DecodeLimits,
}

impl ApiState {
    /// State with open mutating routes (a loopback worker without token) and
    /// the default event limits; set the public fields to change them.
    pub fn new(
        store: Store,
        redis: Redis,
        registry: Registry,
        state: Arc<EngineState>,
        worker: impl Into<String>,
    ) -> Self {
        Self {
            store,
            redis,
            registry,
            state,
            worker: worker.into(),
            access: MutationAccess::Open,
            metrics: metrics::handle(),
            decode_limits: DecodeLimits::default(),
        }
    }

    /// The streams this worker reads: the event stream, then the job stream of
    /// each service it serves.
    pub fn streams(&self) -> Vec<String> {
        let keys = self.redis.keys();
        std::iter::once(keys.events())
            .chain(
                self.registry
                    .services()
                    .into_iter()
                    .map(|service| keys.jobs(service)),
            )
            .collect()
    }
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    let body_limit = state.decode_limits.max_bytes + BODY_HEADROOM;

    let probes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .layer(axum::middleware::from_fn(error::log_internal_errors))
        .layer(trace_layer(Level::DEBUG));

    let reads = Router::new()
        .route("/api/openapi.json", get(openapi::openapi_json))
        .route("/api/worker/status", get(worker::status))
        .route("/api/worker/statistics", get(worker::statistics))
        .route("/api/worker/stream-info", get(worker::stream_info))
        .route("/api/executions", get(executions::list))
        .route("/api/executions/{id}", get(executions::show))
        .route("/api/dead-letters", get(dead_letters::list));

    let mutations = Router::new()
        .route("/api/worker/pause", post(worker::pause))
        .route("/api/worker/resume", post(worker::resume))
        .route(
            "/api/worker/initialize-stream",
            post(worker::initialize_stream),
        )
        .route("/api/events", post(events::publish))
        .route("/api/executions/{id}/cancel", post(executions::cancel))
        .route("/api/executions/{id}/retry", post(executions::retry))
        .route(
            "/api/dead-letters/{id}/redrive",
            post(dead_letters::redrive),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.access.clone(),
            auth::guard_mutations,
        ));

    let api = reads
        .merge(mutations)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(error::log_internal_errors))
        .layer(trace_layer(Level::INFO));

    Router::new()
        .merge(probes)
        .merge(api)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(CatchPanicLayer::custom(error::panicked))
        .with_state(state)
}

/// The request log layer of a group of routes.
type RequestTrace = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    RequestSpan,
    DefaultOnRequest,
    DefaultOnResponse,
    (),
    (),
    (),
>;

/// Request logs: method, path (no query), status and latency; no headers or
/// bodies, so no token or payload reaches the log.
fn trace_layer(level: Level) -> RequestTrace {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_request(DefaultOnRequest::new().level(Level::TRACE))
        .on_response(DefaultOnResponse::new().level(level))
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}

/// One span per request, with the method and the path only.
#[derive(Clone, Copy, Debug)]
struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> tracing::Span {
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
        )
    }
}
