//! Who may call the mutating routes (pause, resume, publish, cancel, retry,
//! redrive, initialise).
//!
//! With a token configured (`AREA_API_TOKEN` or `AREA_API_TOKEN_FILE`), every
//! mutating request must carry `Authorization: Bearer <token>`. The comparison
//! runs on SHA-256 digests in constant time, so neither the token's content nor
//! its length leaks through timing. Without a token, mutating routes are open
//! on a loopback address (only local processes reach it) and refused on any
//! other address; the worker says which at start-up.
//!
//! Loopback is no defence against the operator's browser, which any web page
//! can make post to `127.0.0.1`. So before the token, a mutating request that
//! a browser made for another site is refused (403 `cross_site`): one whose
//! `Sec-Fetch-Site` is neither `same-origin` nor `none`, or whose `Origin`
//! names another host or port than its `Host`. Without a token, the `Host`
//! must also name a loopback address or `localhost` (403 `bad_host`), which
//! defeats DNS rebinding: a page of `evil.example` whose name now resolves to
//! `127.0.0.1` still sends `Host: evil.example`. Command-line clients send no
//! `Origin` and no `Sec-Fetch-Site` and pass unchanged; a request without a
//! `Host` (an HTTP/1.0 client) passes too, as browsers always send one.
//!
//! # Limitations
//!
//! Behind a reverse proxy that rewrites `Host`, a browser's own same-origin
//! calls carry an `Origin` that no longer matches and are refused.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::uri::{Authority, Scheme};
use axum::http::{HeaderMap, Uri, header};
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

/// Middleware of the mutating routes: refuses cross-site requests, then
/// (without a token) foreign `Host` names, then checks the token.
pub(crate) async fn guard_mutations(
    State(access): State<MutationAccess>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let host = request_host(headers, request.uri());
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|value| value.as_bytes());

    let checked = check_same_origin(headers, host)
        .and_then(|()| access.check_host(host))
        .and_then(|()| access.check(authorization));
    match checked {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

impl MutationAccess {
    /// Without a token, whether the `Host` names this loopback worker.
    fn check_host(&self, host: Option<&str>) -> Result<(), ApiError> {
        if !matches!(self, Self::Open) {
            return Ok(());
        }
        match host {
            None => Ok(()),
            Some(host) if is_loopback_host(host) => Ok(()),
            Some(_) => Err(ApiError::forbidden(
                "bad_host",
                "without an API token, mutating routes answer only requests whose Host is a \
                 loopback address or localhost",
            )),
        }
    }
}

/// Refuses a request a browser made on behalf of another site.
fn check_same_origin(headers: &HeaderMap, host: Option<&str>) -> Result<(), ApiError> {
    let cross_site = |message: &str| ApiError::forbidden("cross_site", message);

    if let Some(site) = headers.get("sec-fetch-site") {
        let is_same_origin = [&b"same-origin"[..], b"none"]
            .iter()
            .any(|allowed| site.as_bytes().eq_ignore_ascii_case(allowed));
        if !is_same_origin {
            return Err(cross_site(
                "mutating routes refuse requests a browser makes for another site",
            ));
        }
    }

    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let is_same_origin = origin
        .to_str()
        .ok()
        .zip(host)
        .is_some_and(|(origin, host)| origin_matches_host(origin, host));
    if is_same_origin {
        Ok(())
    } else {
        Err(cross_site(
            "mutating routes refuse requests whose Origin is not the API's own host and port",
        ))
    }
}

/// The request's `Host`, or the authority of an HTTP/2 request. A `Host`
/// that is not text is the empty string, which matches nothing.
fn request_host<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    match headers.get(header::HOST) {
        Some(host) => Some(host.to_str().unwrap_or_default()),
        None => uri.authority().map(Authority::as_str),
    }
}

/// Whether an `Origin` (`scheme://host[:port]`) names the same host and port
/// as `Host`; a `Host` without a port has the origin scheme's default one.
fn origin_matches_host(origin: &str, host: &str) -> bool {
    let Ok(origin) = origin.parse::<Uri>() else {
        return false;
    };
    let (Some(origin_authority), Ok(host)) = (origin.authority(), host.parse::<Authority>()) else {
        return false;
    };
    let default_port = match origin.scheme() {
        Some(scheme) if *scheme == Scheme::HTTP => 80,
        Some(scheme) if *scheme == Scheme::HTTPS => 443,
        _ => return false,
    };
    let is_bare_origin = origin
        .path_and_query()
        .is_none_or(|path| path.as_str() == "/");
    is_bare_origin
        && origin_authority.host().eq_ignore_ascii_case(host.host())
        && origin_authority.port_u16().unwrap_or(default_port)
            == host.port_u16().unwrap_or(default_port)
}

/// Whether a `Host` names `localhost` or a loopback address, with any port.
fn is_loopback_host(host: &str) -> bool {
    let Ok(authority) = host.parse::<Authority>() else {
        return false;
    };
    let name = authority.host();
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(|address| address.is_loopback())
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
    fn origin_must_name_the_host_and_port() {
        assert!(origin_matches_host(
            "http://127.0.0.1:8080",
            "127.0.0.1:8080"
        ));
        assert!(origin_matches_host(
            "http://LocalHost:8080",
            "localhost:8080"
        ));
        assert!(origin_matches_host("http://localhost", "localhost:80"));
        assert!(origin_matches_host("https://area.example", "area.example"));
        assert!(origin_matches_host("http://[::1]:8080", "[::1]:8080"));
        for (origin, host) in [
            ("https://evil.example", "127.0.0.1:8080"),
            ("http://127.0.0.1:3000", "127.0.0.1:8080"),
            ("https://127.0.0.1:8080", "127.0.0.1"),
            ("http://localhost:8080", "127.0.0.1:8080"),
            ("null", "127.0.0.1:8080"),
            ("file://", "127.0.0.1:8080"),
            ("http://127.0.0.1:8080/path", "127.0.0.1:8080"),
            ("http://127.0.0.1:8080", ""),
        ] {
            assert!(!origin_matches_host(origin, host), "{origin} vs {host}");
        }
    }

    #[test]
    fn cross_site_fetches_are_refused() {
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, value.parse().unwrap());
            }
            headers
        };
        let host = Some("127.0.0.1:8080");
        assert!(check_same_origin(&headers(&[]), host).is_ok());
        assert!(check_same_origin(&headers(&[]), None).is_ok());
        for site in ["same-origin", "none"] {
            assert!(check_same_origin(&headers(&[("sec-fetch-site", site)]), host).is_ok());
        }
        for site in ["cross-site", "same-site", "bogus"] {
            let error = check_same_origin(&headers(&[("sec-fetch-site", site)]), host);
            assert_eq!(error.unwrap_err().code(), "cross_site", "{site}");
        }
        let same = headers(&[("origin", "http://127.0.0.1:8080")]);
        assert!(check_same_origin(&same, host).is_ok());
        assert_eq!(
            check_same_origin(&same, None).unwrap_err().code(),
            "cross_site",
            "an Origin without a Host cannot be checked"
        );
    }

    #[test]
    fn without_a_token_the_host_must_be_loopback() {
        for host in [
            "127.0.0.1:8080",
            "127.0.0.2",
            "localhost",
            "LOCALHOST:9",
            "[::1]:8080",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:8080",
            "",
            "[::1",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }

        let open = MutationAccess::new(None, addr("127.0.0.1:8080"));
        assert!(open.check_host(None).is_ok());
        assert!(open.check_host(Some("localhost:8080")).is_ok());
        assert_eq!(
            open.check_host(Some("evil.example:8080"))
                .unwrap_err()
                .code(),
            "bad_host"
        );
        let token = SecretString::from("s3cret");
        let guarded = MutationAccess::new(Some(&token), addr("127.0.0.1:8080"));
        assert!(guarded.check_host(Some("area.example")).is_ok());
    }

    #[test]
    fn debug_and_description_never_show_the_token() {
        let token = SecretString::from("s3cret");
        let access = MutationAccess::new(Some(&token), addr("0.0.0.0:8080"));
        assert!(!format!("{access:?}").contains("s3cret"));
        assert!(!access.describe(addr("0.0.0.0:8080")).contains("s3cret"));
    }
}
