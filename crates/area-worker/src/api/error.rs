//! The API's one error type and its JSON shape:
//! `{"error": {"code": "...", "message": "...", "field": "..."}}`, `field`
//! only for validation errors.
//!
//! An internal failure answers a bare 500 that says nothing of its cause; the
//! cause travels in a response extension to the [`log_internal_errors`]
//! middleware, which logs it once, inside the request's span.

use std::fmt;

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    /// The cause of a 500, for the log only.
    internal: Option<String>,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code, e.g. `not_found`, `invalid_field`, `unauthorized`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// The request field at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The cause of a 500, carried from the handler to the logging middleware.
#[derive(Clone, Debug)]
struct InternalCause(String);

impl ApiError {
    /// An error with an explicit status and stable code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            internal: None,
        }
    }

    /// 400: the request is malformed (query, path, JSON syntax).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 400 naming the query or path parameter at fault.
    pub fn invalid_parameter(field: &str, message: impl Into<String>) -> Self {
        Self::bad_request("invalid_parameter", message).with_field(field)
    }

    /// 401: a mutating route without a valid bearer token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: a route this worker refuses to serve.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the resource is not in a state that allows the request.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 422: the body is well-formed but `field` is not valid.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).with_field(field)
    }

    /// 503: a dependency does not answer.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500 whose cause is logged, never answered.
    pub fn internal(cause: impl fmt::Display) -> Self {
        let mut error = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        );
        error.internal = Some(cause.to_string());
        error
    }

    /// The same error, naming the field at fault.
    pub fn with_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_owned());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"area-worker\""),
            );
        }
        if let Some(cause) = self.internal {
            response.extensions_mut().insert(InternalCause(cause));
        }
        response
    }
}

impl From<area_store::Error> for ApiError {
    fn from(error: area_store::Error) -> Self {
        if error.is_transient() {
            let mut unavailable = Self::unavailable("postgresql does not answer; try again");
            unavailable.internal = Some(error.to_string());
            return unavailable;
        }
        Self::internal(error)
    }
}

impl From<area_stream::Error> for ApiError {
    fn from(error: area_stream::Error) -> Self {
        if error.is_connection() {
            let mut unavailable = Self::unavailable("redis does not answer; try again");
            unavailable.internal = Some(error.to_string());
            return unavailable;
        }
        Self::internal(error)
    }
}

/// Logs the cause of every 500 (and of every 503 caused by a failing
/// dependency) once, and keeps it out of the response.
pub(crate) async fn log_internal_errors(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if let Some(InternalCause(cause)) = response.extensions_mut().remove::<InternalCause>() {
        if response.status().is_server_error()
            && response.status() != StatusCode::SERVICE_UNAVAILABLE
        {
            tracing::error!(error = %cause, "request failed");
        } else {
            tracing::warn!(error = %cause, "a dependency failed");
        }
    }
    response
}

/// Unknown routes answer 404 in the same shape as every other error.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// A known route called with the wrong method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

/// A handler panicked: a bare 500, logged by the panic hook's caller.
pub(crate) fn panicked(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    let mut response = ApiError::internal("handler panicked").into_response();
    // Already logged above.
    response.extensions_mut().remove::<InternalCause>();
    response
}
