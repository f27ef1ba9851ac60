//! `POST /api/events`: publish an event through the API instead of XADD.
//!
//! The body is the event contract itself. It is checked as fan-out will check
//! it (size, nesting, required and typed fields) and its AREA must exist, so a
//! producer learns of a mistake from a 422 naming the field rather than from a
//! dead letter. The body is published unchanged.

use area_core::{Event, EventError};
use area_stream::EVENT_FIELD;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::JsonBody;
use super::{ApiError, ApiState, ErrorBody};

/// An event, as producers append it to the event stream (documentation only:
/// the handler checks the body as fan-out does).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct EventBody {
    /// The AREA whose enabled reactions run.
    #[schema(format = "uuid")]
    pub area_id: String,
    /// The producer's unique id for the event; defaults to the stream entry id.
    pub id: Option<String>,
    /// What happened, e.g. `github.push`; informative.
    pub action: Option<String>,
    /// When it happened at the source (RFC 3339).
    #[schema(format = "date-time")]
    pub occurred_at: Option<String>,
    /// Groups related executions.
    #[schema(format = "uuid")]
    pub correlation_id: Option<String>,
    /// The action's data; reaction templates read it.
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
}

/// Where the event was appended.
#[derive(Debug, Serialize, ToSchema)]
pub struct Published {
    /// The stream entry id.
    pub id: String,
    /// The event stream's key.
    pub stream: String,
}

/// `POST /api/events`.
#[utoipa::path(
    post,
    path = "/api/events",
    tag = "events",
    security(("bearer" = [])),
    request_body(content = EventBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Appended to the event stream", body = Published),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "A cross-site browser request, a Host that is not loopback without a token, or mutating routes are disabled", body = ErrorBody),
        (status = 413, description = "The body is larger than the event limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as `application/json`", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid, or `area_id` names no AREA (code `unknown_area`); `field` names it", body = ErrorBody),
        (status = 503, description = "Redis or PostgreSQL does not answer", body = ErrorBody),
    )
)]
pub(crate) async fn publish(
    State(api): State<ApiState>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    let event = Event::decode(&body, "pending", api.decode_limits).map_err(event_error)?;
    let text = std::str::from_utf8(&body).expect("decoding checked the body is UTF-8");

    let areas = api.store.area_plans(&[event.area_id.0]).await?;
    if !areas.contains_key(&event.area_id.0) {
        // The same code as the dead letter of such an event sent to the stream.
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_area",
            format!("no AREA with id {}", event.area_id),
        )
        .with_field("area_id"));
    }

    let stream = api.redis.keys().events();
    let id = api
        .redis
        .publish_fields(&stream, &[(EVENT_FIELD, text.as_bytes())])
        .await?;
    tracing::debug!(entry_id = %id, area_id = %event.area_id, "event published through the API");
    Ok((StatusCode::ACCEPTED, Json(Published { id, stream })))
}

fn event_error(error: EventError) -> ApiError {
    let message = error.to_string();
    match error {
        EventError::InvalidJson(_) => ApiError::bad_request("invalid_json", message),
        EventError::NotUtf8 => ApiError::bad_request("invalid_body", message),
        EventError::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
        }
        EventError::MissingField(field) => ApiError::invalid_field(field, message),
        EventError::InvalidField { field, .. } => ApiError::invalid_field(field, message),
        EventError::TooDeep { .. } | EventError::NotAnObject(_) | EventError::MissingEventField => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_event", message)
        }
    }
}
