//! Who may call the mutating routes (pause, resume, publish, cancel, retry,
//! redrive, initialise).
//!
//! With a token configured (`AREA_API_TOKEN` or `AREA_API_TOKEN_FILE`), every
//! mutating request must carry `Authorization: Bearer <token>`. The comparison
//! runs on SHA-256 digests in constant time, so neither the token's content nor
//! its length leaks through timing. Without a token, mutating routes are open
//! on a loopback address (only local processes reach it) and refused on any
//! other address; the worker says which at start-up.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiError;

/// The policy for mutating routes.
#[derive(Clone)]
pub enum MutationAccess {
    /// No token, loopback address: open to local clients.
    Open,
    /// A bearer token is required; holds its SHA-256 digest, never the token.
    Token(Arc<[u8; 32]>),
    /// No token, non-loopback address: refused.
    Refused,
}

impl std::fmt::Debug for MutationAccess {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Self::Open => "Open",
            Self::Token(_) => "Token(..)",
            Self::Refused => "Refused",
        })
    }
}

impl MutationAccess {
    /// The policy for a worker whose API listens on `addr`.
    pub fn new(token: Option<&SecretString>, addr: SocketAddr) -> Self {
        match token {
            Some(token) => Self::Token(Arc::new(digest(token.expose_secret().as_bytes()))),
            None if addr.ip().is_loopback() => Self::Open,
            None => Self::Refused,
        }
    }

    /// A sentence for the start-up log; never contains the token.
    pub fn describe(&self, addr: SocketAddr) -> String {
        match self {
            Self::Open => format!(
                "no API token: mutating routes are open to local clients on the loopback address {addr}"
            ),
            Self::Token(_) => "mutating API routes require the bearer token".to_owned(),
            Self::Refused => format!(
                "no API token and the API listens on {addr}, which is not loopback: mutating \
                 routes are refused; set AREA_API_TOKEN or AREA_API_TOKEN_FILE to serve them"
            ),
        }
    }

    /// Whether a request with this `Authorization` header value may mutate.
    fn check(&self, authorization: Option<&[u8]>) -> Result<(), ApiError> {
        let expected = match self {
            Self::Open => return Ok(()),
            Self::Refused => {
                return Err(ApiError::forbidden(
                    "mutations_disabled",
                    "mutating routes are disabled: this worker has no API token and listens on \
                     a non-loopback address",
                ));
            }
            Self::Token(expected) => expected,
        };
        let Some(presented) = authorization.and_then(bearer_token) else {
            return Err(ApiError::unauthorized(
                "this route needs an `Authorization: Bearer <token>` header",
            ));
        };
        if bool::from(digest(presented).ct_eq(expected.as_ref())) {
            Ok(())
        } else {
            Err(ApiError::unauthorized("the bearer token is not valid"))
        }
    }
}

/// Middleware of the mutating routes.
pub(crate) async fn require_token(
    State(access): State<MutationAccess>,
    request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.as_bytes());
    match access.check(authorization) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// The token of a `Bearer <token>` header value (scheme case-insensitive).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer ";
    if value.len() <= SCHEME.len() || !value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    Some(value[SCHEME.len()..].trim_ascii())
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn token_must_match_exactly() {
        let token = SecretString::from("s3cret");
        let access = MutationAccess::new(Some(&token), addr("0.0.0.0:8080"));
        assert!(access.check(Some(b"Bearer s3cret")).is_ok());
        assert!(access.check(Some(b"bearer s3cret")).is_ok());
        for bad in [
            &b"Bearer s3cre"[..],
            b"Bearer s3cret2",
            b"Basic s3cret",
            b"Bearer ",
            b"s3cret",
        ] {
            let error = access.check(Some(bad)).unwrap_err();
            assert_eq!(
                error.code(),
                "unauthorized",
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(access.check(None).unwrap_err().code(), "unauthorized");
    }

    #[test]
    fn no_token_is_open_on_loopback_only() {
        let local = MutationAccess::new(None, addr("127.0.0.1:8080"));
        assert!(local.check(None).is_ok());
        let local_v6 = MutationAccess::new(None, addr("[::1]:8080"));
        assert!(local_v6.check(None).is_ok());
        let public = MutationAccess::new(None, addr("0.0.0.0:8080"));
        assert_eq!(
            public.check(Some(b"Bearer anything")).unwrap_err().code(),
            "mutations_disabled"
        );
    }

    #[test]
    fn debug_and_description_never_show_the_token() {
        let token = SecretString::from("s3cret");
        let access = MutationAccess::new(Some(&token), addr("0.0.0.0:8080"));
        assert!(!format!("{access:?}").contains("s3cret"));
        assert!(!access.describe(addr("0.0.0.0:8080")).contains("s3cret"));
    }
}
