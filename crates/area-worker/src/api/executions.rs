//! Executions: list with filters and a cursor, show one with its attempts,
//! cancel, retry.
//!
//! The cursor is opaque to clients: the last listed row's `(queued_at, id)`,
//! base64url-encoded. Cancel and retry are the store's guarded transitions;
//! a retry's job is enqueued after the row changed, and should Redis refuse it,
//! the scheduler's sweep finds the due retry in PostgreSQL and enqueues it.

use area_store::{
    CancelOutcome, ExecutionCursor, ExecutionFilter, ExecutionRow, ExecutionStatus, RetryOutcome,
};
use area_stream::Job;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::extract::{
    OptionalJsonBody, PathParam, Query, checked_text, instant_parameter, uuid_parameter,
};
use super::{ApiError, ApiState, ErrorBody};

/// Page size when the request sets none.
const DEFAULT_LIMIT: i64 = 50;
/// Largest page.
const MAX_LIMIT: i64 = 500;
/// Longest cancel reason kept.
const MAX_REASON_CHARS: usize = 1000;

/// Filters and paging of `GET /api/executions`. All filters combine.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only executions in this status.
    #[param(value_type = Option<StatusName>)]
    pub status: Option<String>,
    /// Only executions of this service, e.g. `webhook`.
    pub service: Option<String>,
    /// Only executions of this AREA.
    #[param(value_type = Option<String>, format = Uuid)]
    pub area_id: Option<String>,
    /// Only executions of this reaction.
    #[param(value_type = Option<String>, format = Uuid)]
    pub reaction_id: Option<String>,
    /// Only executions of this event.
    pub event_id: Option<String>,
    /// Only executions queued at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// Only executions queued before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

/// An execution's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusName {
    /// Waiting for its first attempt.
    Queued,
    /// An attempt holds the lease.
    Running,
    /// Delivered.
    Ok,
    /// Failed; waiting for its next attempt.
    Retry,
    /// Given up.
    Failed,
    /// Canceled; never attempted again unless retried by hand.
    Canceled,
}

impl From<ExecutionStatus> for StatusName {
    fn from(status: ExecutionStatus) -> Self {
        match status {
            ExecutionStatus::Queued => Self::Queued,
            ExecutionStatus::Running => Self::Running,
            ExecutionStatus::Ok => Self::Ok,
            ExecutionStatus::Retry => Self::Retry,
            ExecutionStatus::Failed => Self::Failed,
            ExecutionStatus::Canceled => Self::Canceled,
        }
    }
}

/// An execution as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionSummary {
    /// Its id.
    pub id: Uuid,
    /// The event's AREA.
    pub area_id: Uuid,
    /// The reaction run.
    pub reaction_id: Uuid,
    /// The event's id.
    pub event_id: String,
    /// The reaction's service.
    pub service: String,
    /// Where it stands.
    pub status: StatusName,
    /// Attempts started so far.
    pub attempt: i32,
    /// When fan-out created it.
    pub queued_at: DateTime<Utc>,
    /// When the latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached `ok`, `failed` or `canceled`.
    pub finished_at: Option<DateTime<Utc>>,
    /// When the next attempt is due, in `retry`.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The event's correlation id.
    pub correlation_id: Option<Uuid>,
    /// The latest error (or the cancel reason).
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
}

/// An execution with its payloads and every attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionDetail {
    /// The listed fields.
    #[serde(flatten)]
    pub summary: ExecutionSummary,
    /// The event as received.
    #[schema(value_type = Object)]
    pub input_payload: Value,
    /// What the service answered to the successful attempt.
    #[schema(value_type = Option<Object>)]
    pub output_payload: Option<Value>,
    /// Every finished attempt, oldest first: `attempt`, `status`,
    /// `started_at`, `finished_at`, and `output` or `error`.
    #[schema(value_type = Vec<Object>)]
    pub attempts: Value,
    /// The worker holding the lease while `running`.
    pub locked_by: Option<String>,
    /// When that lease ends.
    pub lease_until: Option<DateTime<Utc>>,
    /// `event_id:reaction_id`, the idempotency key sent to services.
    pub dedup_key: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A page of executions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionPage {
    /// The executions.
    pub items: Vec<ExecutionSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The optional body of a cancel request (documentation only: the handler
/// reads the body itself so that an empty body is accepted).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct CancelRequest {
    /// Why, kept as the execution's error (at most 1000 characters).
    #[schema(max_length = 1000)]
    pub reason: Option<String>,
}

/// What a cancel did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Canceled {
    /// The execution now.
    pub execution: ExecutionSummary,
    /// Its status before the request (`canceled` when it already was).
    pub previous_status: StatusName,
}

/// What a retry did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Retried {
    /// The execution now, in `retry` and due.
    pub execution: ExecutionSummary,
    /// Whether its job reached the job stream now; if not, the worker's sweep
    /// enqueues it within `AREA_CLAIM_IDLE_MS`.
    pub enqueued: bool,
}

/// `GET /api/executions`.
#[utoipa::path(
    get,
    path = "/api/executions",
    tag = "executions",
    params(ListParams),
    responses(
        (status = 200, description = "A page of executions, newest first", body = ExecutionPage),
        (status = 400, description = "A parameter is invalid; `field` names it", body = ErrorBody),
        (status = 503, description = "PostgreSQL does not answer", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(api): State<ApiState>,
    Query(params): Query<ListParams>,
) -> Result<Json<ExecutionPage>, ApiError> {
    let (filter, cursor, limit) = parse_list(params)?;
    let mut rows = api
        .store
        .list_executions(&filter, cursor, limit + 1)
        .await?;

    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
            .map(|row| encode_cursor(ExecutionCursor::after(row)))
    } else {
        None
    };
    Ok(Json(ExecutionPage {
        items: rows.iter().map(summary).collect(),
        next_cursor,
    }))
}

/// `GET /api/executions/{id}`.
#[utoipa::path(
    get,
    path = "/api/executions/{id}",
    tag = "executions",
    params(("id" = String, Path, format = Uuid, description = "The execution's id")),
    responses(
        (status = 200, description = "The execution with its attempts", body = ExecutionDetail),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 404, description = "No such execution", body = ErrorBody),
        (status = 503, description = "PostgreSQL does not answer", body = ErrorBody),
    )
)]
pub(crate) async fn show(
    State(api): State<ApiState>,
    PathParam(id): PathParam,
) -> Result<Json<ExecutionDetail>, ApiError> {
    let id = uuid_parameter("id", &id)?;
    let row = api
        .store
        .execution(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no execution {id}")))?;
    Ok(Json(detail(row)))
}

/// `POST /api/executions/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/api/executions/{id}/cancel",
    tag = "executions",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The execution's id")),
    request_body(content = Option<CancelRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "Canceled (or already was)", body = Canceled),
        (status = 400, description = "The id is not a UUID, or the body is not JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "A cross-site browser request, a Host that is not loopback without a token, or mutating routes are disabled", body = ErrorBody),
        (status = 404, description = "No such execution", body = ErrorBody),
        (status = 409, description = "The execution already finished (`ok` or `failed`)", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not sent as `application/json`", body = ErrorBody),
        (status = 422, description = "The reason is not valid", body = ErrorBody),
        (status = 503, description = "PostgreSQL does not answer", body = ErrorBody),
    )
)]
pub(crate) async fn cancel(
    State(api): State<ApiState>,
    PathParam(id): PathParam,
    OptionalJsonBody(body): OptionalJsonBody,
) -> Result<Json<Canceled>, ApiError> {
    let id = uuid_parameter("id", &id)?;
    let reason = cancel_reason(&body)?;

    match api.store.cancel_execution(id, reason.as_deref()).await? {
        CancelOutcome::Canceled { row, was } => {
            if was != ExecutionStatus::Canceled {
                tracing::info!(execution_id = %id, previous_status = %was, "execution canceled through the API");
                metrics::counter!(
                    "area_executions_total",
                    "service" => row.service.clone(),
                    "status" => ExecutionStatus::Canceled.as_str()
                )
                .increment(1);
            }
            Ok(Json(Canceled {
                execution: summary(&row),
                previous_status: was.into(),
            }))
        }
        CancelOutcome::Finished(status) => Err(ApiError::conflict(
            "already_finished",
            format!("execution {id} is {status}; only unfinished executions can be canceled"),
        )),
        CancelOutcome::NotFound => Err(ApiError::not_found(format!("no execution {id}"))),
    }
}

/// `POST /api/executions/{id}/retry`.
#[utoipa::path(
    post,
    path = "/api/executions/{id}/retry",
    tag = "executions",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The execution's id")),
    responses(
        (status = 202, description = "A new attempt is due now", body = Retried),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "A cross-site browser request, a Host that is not loopback without a token, or mutating routes are disabled", body = ErrorBody),
        (status = 404, description = "No such execution", body = ErrorBody),
        (status = 409, description = "Only `failed` and `canceled` executions can be retried", body = ErrorBody),
        (status = 503, description = "PostgreSQL does not answer", body = ErrorBody),
    )
)]
pub(crate) async fn retry(
    State(api): State<ApiState>,
    PathParam(id): PathParam,
) -> Result<(StatusCode, Json<Retried>), ApiError> {
    let id = uuid_parameter("id", &id)?;
    let row = match api.store.retry_execution(id).await? {
        RetryOutcome::Scheduled(row) => row,
        RetryOutcome::NotRetryable(status) => {
            return Err(ApiError::conflict(
                "not_retryable",
                format!(
                    "execution {id} is {status}; only failed or canceled executions can be retried"
                ),
            ));
        }
        RetryOutcome::NotFound => return Err(ApiError::not_found(format!("no execution {id}"))),
    };

    let job = Job {
        service: row.service.clone(),
        execution_id: row.id,
    };
    let enqueued = match api.redis.enqueue_jobs(std::slice::from_ref(&job)).await {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(execution_id = %id, error = %error, "cannot enqueue the retry now; the sweep will");
            false
        }
    };
    tracing::info!(execution_id = %id, service = %row.service, "execution retried through the API");
    metrics::counter!("area_manual_retries_total", "service" => row.service.clone()).increment(1);
    Ok((
        StatusCode::ACCEPTED,
        Json(Retried {
            execution: summary(&row),
            enqueued,
        }),
    ))
}

fn parse_list(
    params: ListParams,
) -> Result<(ExecutionFilter, Option<ExecutionCursor>, i64), ApiError> {
    let status = params
        .status
        .map(|text| {
            text.parse::<ExecutionStatus>().map_err(|_| {
                ApiError::invalid_parameter(
                    "status",
                    "`status` must be one of queued, running, ok, retry, failed, canceled",
                )
            })
        })
        .transpose()?;
    let filter = ExecutionFilter {
        status,
        service: params
            .service
            .map(|text| checked_text("service", text))
            .transpose()?,
        area_id: params
            .area_id
            .map(|text| uuid_parameter("area_id", &text))
            .transpose()?,
        reaction_id: params
            .reaction_id
            .map(|text| uuid_parameter("reaction_id", &text))
            .transpose()?,
        event_id: params
            .event_id
            .map(|text| checked_text("event_id", text))
            .transpose()?,
        queued_from: params
            .from
            .map(|text| instant_parameter("from", &text))
            .transpose()?,
        queued_until: params
            .until
            .map(|text| instant_parameter("until", &text))
            .transpose()?,
    };
    let cursor = params.cursor.map(|text| decode_cursor(&text)).transpose()?;
    let limit = match params.limit {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| {
                ApiError::invalid_parameter(
                    "limit",
                    format!("`limit` must be a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    Ok((filter, cursor, limit))
}

fn encode_cursor(cursor: ExecutionCursor) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}|{}",
        cursor.queued_at.timestamp_micros(),
        cursor.id
    ))
}

fn decode_cursor(text: &str) -> Result<ExecutionCursor, ApiError> {
    let invalid = || ApiError::invalid_parameter("cursor", "`cursor` is not a cursor of this API");
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (micros, id) = text.split_once('|').ok_or_else(invalid)?;
    let queued_at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(invalid)?;
    let id = Uuid::parse_str(id).map_err(|_| invalid())?;
    // Listing compares against a timestamptz, whose range is narrower.
    let checked = instant_parameter("cursor", &queued_at.to_rfc3339()).map_err(|_| invalid())?;
    Ok(ExecutionCursor {
        queued_at: checked,
        id,
    })
}

/// The reason of a cancel body: none for an empty body or `{}`.
fn cancel_reason(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request("invalid_json", format!("the body is not JSON: {error}"))
    })?;
    let Value::Object(mut fields) = value else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "the body must be a JSON object such as {\"reason\": \"...\"}",
        ));
    };
    match fields.remove("reason") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(reason)) => {
            if reason.contains('\0') {
                return Err(ApiError::invalid_field(
                    "reason",
                    "`reason` must not contain a NUL character",
                ));
            }
            if reason.chars().count() > MAX_REASON_CHARS {
                return Err(ApiError::invalid_field(
                    "reason",
                    format!("`reason` is longer than {MAX_REASON_CHARS} characters"),
                ));
            }
            Ok(Some(reason))
        }
        Some(_) => Err(ApiError::invalid_field(
            "reason",
            "`reason` must be a string",
        )),
    }
}

fn summary(row: &ExecutionRow) -> ExecutionSummary {
    ExecutionSummary {
        id: row.id,
        area_id: row.area_id,
        reaction_id: row.reaction_id,
        event_id: row.event_id.clone(),
        service: row.service.clone(),
        status: row.status().into(),
        attempt: row.attempt,
        queued_at: row.queued_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        next_attempt_at: row.next_attempt_at,
        correlation_id: row.correlation_id,
        error: row.error.clone(),
    }
}

fn detail(row: ExecutionRow) -> ExecutionDetail {
    ExecutionDetail {
        summary: summary(&row),
        input_payload: row.input_payload,
        output_payload: row.output_payload,
        attempts: row.attempts,
        locked_by: row.locked_by,
        lease_until: row.lease_until,
        dedup_key: row.dedup_key,
        updated_at: row.updated_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let cursor = ExecutionCursor {
            queued_at: DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(decode_cursor(&encode_cursor(cursor)).unwrap(), cursor);
        assert!(decode_cursor("not a cursor").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("9999999999999999999|x")).is_err());
    }

    #[test]
    fn cancel_body_is_optional() {
        assert_eq!(cancel_reason(b"").unwrap(), None);
        assert_eq!(cancel_reason(b"{}").unwrap(), None);
        assert_eq!(
            cancel_reason(br#"{"reason":"duplicate"}"#)
                .unwrap()
                .as_deref(),
            Some("duplicate")
        );
        assert_eq!(
            cancel_reason(b"{").unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            cancel_reason(br#"{"reason":3}"#).unwrap_err().status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            cancel_reason(b"[]").unwrap_err().status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
