//! Extractors whose rejections answer in the API's error shape instead of
//! axum's plain-text ones, plus the checks every text parameter goes through.
//!
//! JSON bodies must say so with `Content-Type: application/json`. A browser
//! sends a cross-site request without asking first (no CORS preflight) only
//! with a form or `text/plain` content type, so a body of any other type is a
//! 415 rather than JSON read regardless of what the request claims.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use chrono::{DateTime, Datelike, Utc};
use serde::de::DeserializeOwned;

use super::ApiError;

/// Query parameters; a malformed query is a 400 that names the parameter. The
/// parameter types refuse names they do not know (`deny_unknown_fields`), so a
/// misspelt filter (`?staus=failed`) is an error rather than no filter at all.
pub(crate) struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|query| Self(query.0))
            .map_err(|rejection| {
                let text = rejection.body_text();
                // axum prefixes serde's reason with its own words; keep the reason.
                let reason = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                let error = ApiError::bad_request("invalid_query", format!("bad query: {reason}"));
                match named_field(reason) {
                    Some(field) => error.with_field(field),
                    None => error,
                }
            })
    }
}

/// The parameter serde names in "unknown field `name`, expected ..." or
/// "duplicate field `name`".
fn named_field(message: &str) -> Option<&str> {
    let rest = ["unknown field `", "duplicate field `"]
        .iter()
        .find_map(|marker| message.split_once(marker))?
        .1;
    rest.split_once('`').map(|(name, _)| name)
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

/// The raw bytes of a JSON body, within the router's size limit (413 beyond
/// it); without `Content-Type: application/json` a 415.
pub(crate) struct JsonBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(unsupported_media_type());
        }
        Ok(Self(raw_body(request, state).await?))
    }
}

/// The raw bytes of an optional JSON body: an empty body needs no content
/// type, any other is a [`JsonBody`].
pub(crate) struct OptionalJsonBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for OptionalJsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = is_json(request.headers());
        let body = raw_body(request, state).await?;
        if !body.is_empty() && !is_json {
            return Err(unsupported_media_type());
        }
        Ok(Self(body))
    }
}

async fn raw_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(body_rejection)
}

/// Whether the content type is `application/json`, parameters such as
/// `charset` allowed.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "the body must be JSON sent with `Content-Type: application/json`",
    )
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
    fn json_content_type_allows_parameters_only() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            headers
        };
        for json in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
        ] {
            assert!(is_json(&headers(json)), "{json}");
        }
        for other in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "text/plain; application/json",
        ] {
            assert!(!is_json(&headers(other)), "{other}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn text_with_nul_is_refused() {
        assert!(checked_text("event_id", "a\0b".into()).is_err());
        assert_eq!(checked_text("event_id", "ab".into()).unwrap(), "ab");
    }
}
