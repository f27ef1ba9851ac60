//! The OpenAPI document of the API, generated from the handlers' annotations
//! and served at `GET /api/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{dead_letters, error, events, executions, health, metrics, worker};

/// The API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "area-worker",
        description = "Watch and steer an AREA reaction worker. Read routes are open; mutating \
                       routes need `Authorization: Bearer <AREA_API_TOKEN>`, refuse cross-site \
                       browser requests and take JSON bodies as `application/json`. Errors are \
                       `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}`."
    ),
    paths(
        health::healthz,
        health::readyz,
        metrics::metrics,
        openapi_json,
        worker::status,
        worker::statistics,
        worker::stream_info,
        worker::pause,
        worker::resume,
        worker::initialize_stream,
        events::publish,
        executions::list,
        executions::show,
        executions::cancel,
        executions::retry,
        dead_letters::list,
        dead_letters::redrive,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail)),
    modifiers(&BearerScheme),
    tags(
        (name = "probes", description = "Liveness, readiness and metrics"),
        (name = "worker", description = "This worker and its streams"),
        (name = "events", description = "Publishing events"),
        (name = "executions", description = "Execution history, cancel and retry"),
        (name = "dead letters", description = "Entries given up, and their redrive"),
    )
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /api/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "probes",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object))
)]
pub(crate) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
