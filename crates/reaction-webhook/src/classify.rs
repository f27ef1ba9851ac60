//! How an attempt's result becomes an [`Outcome`] or a classified
//! [`ReactionError`], as DESIGN.md's delivery semantics ask.
//!
//! | what happened | result | code |
//! |---|---|---|
//! | 2xx | outcome `{"status", "body", "truncated"}` | |
//! | 408, 5xx | retryable | `http_408`, `http_503`, ... |
//! | 429 | rate limited, with `Retry-After` when usable | `http_429` |
//! | 3xx | permanent: redirects are not followed | `http_302`, ... |
//! | other status | permanent | `http_404`, ... |
//! | blocked address | permanent | `blocked_destination` |
//! | connection not established | retryable | `connect` |
//! | connection lost after sending began | retryable, possible duplicate | `connection_closed` |
//! | deadline passed before the response | retryable, possible duplicate | `timeout` |
//!
//! Messages name the host at most, never the full URL: webhook URLs often
//! carry a token in their path or query.

use std::error::Error as StdError;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use area_core::text::truncate_on_char_boundary;
use area_core::{Outcome, ReactionError};
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use crate::error::Error;
use crate::response::{BodyExcerpt, parse_retry_after};

/// How much of a body an error message quotes; the outcome keeps more.
const MESSAGE_EXCERPT_BYTES: usize = 256;

/// The result of an attempt whose response status line arrived.
pub(crate) fn classify_response(
    status: StatusCode,
    headers: &HeaderMap,
    excerpt: BodyExcerpt,
) -> Result<Outcome, ReactionError> {
    let code = format!("http_{}", status.as_u16());

    if status.is_success() {
        let mut output = json!({
            "status": status.as_u16(),
            "body": excerpt.text,
            "truncated": excerpt.truncated,
        });
        if let Some(interruption) = excerpt.interruption {
            output["body_error"] = Value::from(interruption.as_str());
        }
        return Ok(Outcome::new(output));
    }

    if status.is_redirection() {
        let location = headers
            .get(header::LOCATION)
            .map(|location| String::from_utf8_lossy(location.as_bytes()).into_owned());
        let message = match location {
            Some(location) => {
                format!("the receiver answered {status} to {location}; redirects are not followed")
            }
            None => format!("the receiver answered {status}; redirects are not followed"),
        };
        return Err(ReactionError::permanent(code, message));
    }

    let message = status_message(status, &excerpt);
    if status == StatusCode::TOO_MANY_REQUESTS {
        let retry_after = headers
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        return Err(ReactionError::rate_limited(retry_after, code, message));
    }
    if status == StatusCode::REQUEST_TIMEOUT || status.is_server_error() {
        return Err(ReactionError::retryable(code, message));
    }
    Err(ReactionError::permanent(code, message))
}

/// The error of an attempt whose request failed before a response arrived.
pub(crate) fn classify_send_error(error: &reqwest::Error, host: &str) -> ReactionError {
    if let Some(blocked @ Error::BlockedDestination { .. }) = find_cause::<Error>(error) {
        return ReactionError::permanent("blocked_destination", blocked.to_string());
    }

    let cause = root_cause(error);
    // A connection that was never established sent nothing, even if it timed out.
    if error.is_connect() {
        return ReactionError::retryable(
            "connect",
            format!("could not connect to {host}: {cause}"),
        );
    }
    if error.is_timeout() {
        return ReactionError::retryable("timeout", format!("{host} did not answer in time"))
            .with_possible_duplicate();
    }
    if error.is_builder() {
        return ReactionError::permanent(
            "invalid_request",
            format!("the request could not be built: {cause}"),
        );
    }
    // The connection was up, so the receiver may have seen the whole request.
    ReactionError::retryable(
        "connection_closed",
        format!("the connection to {host} failed before the response: {cause}"),
    )
    .with_possible_duplicate()
}

/// The error of an attempt whose deadline passed before the response arrived.
pub(crate) fn timed_out(host: &str, timeout: Duration) -> ReactionError {
    // Without knowing how far the request got, assume the receiver may have it.
    ReactionError::retryable(
        "timeout",
        format!("{host} did not answer within {} ms", timeout.as_millis()),
    )
    .with_possible_duplicate()
}

/// The error of a request to a literal IP address that is blocked.
pub(crate) fn blocked_address(address: IpAddr, reason: &str) -> ReactionError {
    ReactionError::permanent(
        "blocked_destination",
        format!("{address} is a blocked address: {reason}"),
    )
}

fn status_message(status: StatusCode, excerpt: &BodyExcerpt) -> String {
    let body = excerpt.text.trim();
    if body.is_empty() {
        return format!("the receiver answered {status}");
    }
    let (quoted, is_cut) = truncate_on_char_boundary(body, MESSAGE_EXCERPT_BYTES);
    let ellipsis = if is_cut || excerpt.truncated {
        "…"
    } else {
        ""
    };
    format!("the receiver answered {status}: {quoted}{ellipsis}")
}

fn find_cause<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// The innermost cause: reqwest's own message holds the URL, which may carry a
/// token, while the innermost one says what failed ("Connection refused").
fn root_cause(error: &(dyn StdError + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use area_core::ErrorClass;
    use http::HeaderValue;

    use super::*;

    fn excerpt(text: &str) -> BodyExcerpt {
        BodyExcerpt {
            text: text.to_owned(),
            truncated: false,
            interruption: None,
        }
    }

    fn classify(
        status: u16,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Outcome, ReactionError> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        classify_response(StatusCode::from_u16(status).unwrap(), &map, excerpt(body))
    }

    #[test]
    fn success_keeps_status_and_excerpt() {
        let outcome = classify(201, &[], "created").unwrap();
        assert_eq!(
            outcome.output,
            json!({"status": 201, "body": "created", "truncated": false})
        );
    }

    #[test]
    fn classifies_statuses() {
        let cases = [
            (408, ErrorClass::Retryable),
            (500, ErrorClass::Retryable),
            (502, ErrorClass::Retryable),
            (503, ErrorClass::Retryable),
            (599, ErrorClass::Retryable),
            (400, ErrorClass::Permanent),
            (401, ErrorClass::Permanent),
            (404, ErrorClass::Permanent),
            (410, ErrorClass::Permanent),
            (301, ErrorClass::Permanent),
            (302, ErrorClass::Permanent),
            (307, ErrorClass::Permanent),
            (429, ErrorClass::RateLimited { retry_after: None }),
        ];
        for (status, class) in cases {
            let error = classify(status, &[], "").unwrap_err();
            assert_eq!(error.class, class, "{status}");
            assert_eq!(error.code, format!("http_{status}"));
            assert!(!error.possible_duplicate, "{status}");
        }
    }

    #[test]
    fn rate_limit_carries_retry_after() {
        let error = classify(429, &[("retry-after", "3")], "").unwrap_err();
        assert_eq!(
            error.class,
            ErrorClass::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
    }

    #[test]
    fn redirect_names_its_location() {
        let error = classify(302, &[("location", "http://169.254.169.254/")], "").unwrap_err();
        assert_eq!(
            error.message,
            "the receiver answered 302 Found to http://169.254.169.254/; redirects are not followed"
        );
    }

    #[test]
    fn error_messages_quote_a_short_excerpt() {
        let error = classify(400, &[], &"x".repeat(1000)).unwrap_err();
        assert!(
            error
                .message
                .starts_with("the receiver answered 400 Bad Request: xxx")
        );
        assert!(error.message.ends_with("x…"), "{}", error.message);
        assert!(error.message.len() < 320);
        let error = classify(404, &[], "  \n").unwrap_err();
        assert_eq!(error.message, "the receiver answered 404 Not Found");
    }
}
