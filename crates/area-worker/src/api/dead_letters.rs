//! Dead letters: list them (oldest first, with a cursor) and redrive one to the
//! stream it came from once its cause is fixed.

use area_stream::DeadLetter;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{PathParam, Query, entry_id_parameter};
use super::{ApiError, ApiState, ErrorBody};

/// Page size when the request sets none.
const DEFAULT_LIMIT: usize = 50;
/// Largest page.
const MAX_LIMIT: usize = 500;

/// Paging of `GET /api/dead-letters`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterParams {
    /// `next_cursor` of the previous page: a dead letter id.
    #[param(value_type = Option<String>, pattern = r"^[0-9]+-[0-9]+$")]
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

/// A dead letter.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterView {
    /// Its id in the dead-letter stream.
    pub id: String,
    /// The stream it came from.
    pub stream: String,
    /// Its id in that stream.
    pub entry_id: String,
    /// Why it was given up: a stable code.
    pub code: String,
    /// Why it was given up: a sentence.
    pub reason: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// How often it had been delivered, when known.
    pub delivery_count: Option<u64>,
    /// The original entry's fields, as text.
    pub fields: Vec<DeadLetterField>,
}

/// One field of a dead entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterField {
    /// The field's name.
    pub name: String,
    /// Its value (lossy for bytes that are not UTF-8).
    pub value: String,
}

/// A page of dead letters, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterPage {
    /// The dead letters.
    pub items: Vec<DeadLetterView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// Dead letters in the stream.
    pub total: u64,
}

/// What a redrive did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Redriven {
    /// The dead letter, now removed.
    pub id: String,
    /// The id of the entry appended to its original stream.
    pub entry_id: String,
}

/// `GET /api/dead-letters`.
#[utoipa::path(
    get,
    path = "/api/dead-letters",
    tag = "dead letters",
    params(DeadLetterParams),
    responses(
        (status = 200, description = "A page of dead letters, oldest first", body = DeadLetterPage),
        (status = 400, description = "A parameter is invalid; `field` names it", body = ErrorBody),
        (status = 503, description = "Redis does not answer", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(api): State<ApiState>,
    Query(params): Query<DeadLetterParams>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let limit = match params.limit {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| {
                ApiError::invalid_parameter(
                    "limit",
                    format!("`limit` must be a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let total = api.redis.dead_letter_count().await?;
    if let Some(cursor) = &params.cursor
        && entry_id_parameter("cursor", cursor)? == (u64::MAX, u64::MAX)
    {
        // Nothing sorts after the greatest id, and Redis refuses to look.
        return Ok(Json(DeadLetterPage {
            items: Vec::new(),
            next_cursor: None,
            total,
        }));
    }

    let mut letters = api
        .redis
        .dead_letters(params.cursor.as_deref(), limit + 1)
        .await?;
    let next_cursor = if letters.len() > limit {
        letters.truncate(limit);
        letters.last().map(|letter| letter.id.clone())
    } else {
        None
    };
    Ok(Json(DeadLetterPage {
        items: letters.into_iter().map(view).collect(),
        next_cursor,
        total,
    }))
}

/// `POST /api/dead-letters/{id}/redrive`.
#[utoipa::path(
    post,
    path = "/api/dead-letters/{id}/redrive",
    tag = "dead letters",
    security(("bearer" = [])),
    params(("id" = String, Path, pattern = r"^[0-9]+-[0-9]+$", description = "The dead letter's id")),
    responses(
        (status = 200, description = "Appended to its original stream and removed from the dead letters", body = Redriven),
        (status = 400, description = "The id is not a stream entry id", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "A cross-site browser request, a Host that is not loopback without a token, or mutating routes are disabled", body = ErrorBody),
        (status = 404, description = "No such dead letter", body = ErrorBody),
        (status = 409, description = "The dead letter does not name its stream", body = ErrorBody),
        (status = 503, description = "Redis does not answer", body = ErrorBody),
    )
)]
pub(crate) async fn redrive(
    State(api): State<ApiState>,
    PathParam(id): PathParam,
) -> Result<Json<Redriven>, ApiError> {
    entry_id_parameter("id", &id)?;
    match api.redis.redrive(&id).await {
        Ok(Some(entry_id)) => {
            tracing::info!(dead_letter_id = %id, entry_id = %entry_id, "dead letter redriven through the API");
            Ok(Json(Redriven { id, entry_id }))
        }
        Ok(None) => Err(ApiError::not_found(format!("no dead letter {id}"))),
        Err(area_stream::Error::Reply(message)) => {
            Err(ApiError::conflict("cannot_redrive", message))
        }
        Err(error) => Err(error.into()),
    }
}

fn view(letter: DeadLetter) -> DeadLetterView {
    DeadLetterView {
        id: letter.id,
        stream: letter.stream,
        entry_id: letter.entry_id,
        code: letter.code,
        reason: letter.reason,
        at_ms: letter.at_ms,
        delivery_count: letter.delivery_count,
        fields: letter
            .fields
            .into_iter()
            .map(|(name, value)| DeadLetterField { name, value })
            .collect(),
    }
}
