//! Extractors whose rejections answer in the API's error shape instead of
//! axum's plain-text ones, plus the checks every text parameter goes through.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, Datelike, Utc};
use serde::de::DeserializeOwned;

use super::ApiError;

/// Query parameters; a malformed query is a 400 that names the parameter.
pub(crate) struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|query| Self(query.0))
            .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))
    }
}

/// One path parameter as text; handlers parse it themselves so that the error
/// names the parameter.
pub(crate) struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|path| Self(path.0))
            .map_err(|rejection| ApiError::bad_request("invalid_path", rejection.body_text()))
    }
}

/// The raw body, within the router's size limit (413 beyond it).
pub(crate) struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(request, state)
            .await
            .map(Self)
            .map_err(body_rejection)
    }
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than the limit",
        );
    }
    ApiError::bad_request("invalid_body", rejection.body_text())
}

/// Text that PostgreSQL can store: no NUL character, bounded length.
pub(crate) fn checked_text(field: &str, text: String) -> Result<String, ApiError> {
    const MAX_CHARS: usize = 1024;
    if text.contains('\0') {
        return Err(ApiError::invalid_parameter(
            field,
            format!("`{field}` must not contain a NUL character"),
        ));
    }
    if text.chars().count() > MAX_CHARS {
        return Err(ApiError::invalid_parameter(
            field,
            format!("`{field}` is longer than {MAX_CHARS} characters"),
        ));
    }
    Ok(text)
}

/// A UUID parameter.
pub(crate) fn uuid_parameter(field: &str, text: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(text)
        .map_err(|_| ApiError::invalid_parameter(field, format!("`{field}` is not a UUID")))
}

/// An RFC 3339 instant within what PostgreSQL stores (years 1 to 9999).
pub(crate) fn instant_parameter(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    let instant = DateTime::parse_from_rfc3339(text)
        .map(|instant| instant.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::invalid_parameter(field, format!("`{field}` is not an RFC 3339 timestamp"))
        })?;
    if !(1..=9999).contains(&instant.year()) {
        return Err(ApiError::invalid_parameter(
            field,
            format!("`{field}` must be between years 1 and 9999"),
        ));
    }
    Ok(instant)
}

/// A Redis stream entry id, `<milliseconds>-<sequence>`.
pub(crate) fn entry_id_parameter(field: &str, text: &str) -> Result<(u64, u64), ApiError> {
    let invalid = || {
        ApiError::invalid_parameter(
            field,
            format!("`{field}` is not a stream entry id like 1712345678901-0"),
        )
    };
    let (millis, sequence) = text.split_once('-').ok_or_else(invalid)?;
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
    if !digits(millis) || !digits(sequence) {
        return Err(invalid());
    }
    Ok((
        millis.parse().map_err(|_| invalid())?,
        sequence.parse().map_err(|_| invalid())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_are_two_decimal_numbers() {
        assert_eq!(entry_id_parameter("id", "17-3").unwrap(), (17, 3));
        for bad in [
            "17",
            "-3",
            "17-",
            "a-1",
            "1-2-3",
            "+1-2",
            "99999999999999999999-0",
        ] {
            let error = entry_id_parameter("id", bad).unwrap_err();
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn instants_outside_postgresql_range_are_refused() {
        assert!(instant_parameter("from", "2026-12-03T10:00:00Z").is_ok());
        assert!(instant_parameter("from", "2026-12-03T10:00:00+02:00").is_ok());
        assert!(instant_parameter("from", "0000-12-03T10:00:00Z").is_err());
        assert!(instant_parameter("from", "yesterday").is_err());
    }

    #[test]
    fn text_with_nul_is_refused() {
        assert!(checked_text("event_id", "a\0b".into()).is_err());
        assert_eq!(checked_text("event_id", "ab".into()).unwrap(), "ab");
    }
}
