//! How a failed `chat.postMessage` is classified for the retry policy.
//!
//! Slack answers most failures with HTTP 200 and `{"ok": false, "error": code}`;
//! slack-morphism turns those into `ApiError`s carrying the code. Rate limits
//! come as HTTP 429 with a `Retry-After` in seconds (`RateLimitError`), outages
//! as 5xx (`HttpError`), network failures as `HttpProtocolError`, and a reply it
//! cannot decode (including one without `ok`) as `ProtocolError`. Only a reply
//! with `ok: true` is a success; everything else lands in one of the three
//! classes here.
//!
//! # Limitations
//!
//! - slack-morphism keeps the `Retry-After` header only for HTTP 429. A
//!   `ratelimited` code in an HTTP 200 reply is rate limited without a hint, so
//!   the retry schedule decides the delay.
//! - A 429 whose JSON body lacks `ok` fails slack-morphism's envelope decoding
//!   before it looks at the status, so it surfaces as an unreadable reply:
//!   retryable, but without the `Retry-After`.

use area_core::ReactionError;
use area_core::text::truncate_chars;
use slack_morphism::errors::SlackClientError;

/// Slack error codes that say "try again later".
const RETRYABLE_CODES: [&str; 4] = [
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// Slack error codes that mean we are being rate limited.
const RATE_LIMITED_CODES: [&str; 2] = ["ratelimited", "rate_limited"];

/// Error codes from the server are kept, but a hostile or broken server must
/// not fill the execution row.
const MAX_CODE_CHARS: usize = 64;

/// Classifies a Slack `error` code from an `ok: false` reply.
pub(crate) fn slack_error(code: &str) -> ReactionError {
    let (code, _) = truncate_chars(code, MAX_CODE_CHARS);
    let message = format!("slack rejected the message: {code}");

    if RATE_LIMITED_CODES.contains(&code) {
        ReactionError::rate_limited(None, code, message)
    } else if RETRYABLE_CODES.contains(&code) {
        ReactionError::retryable(code, message)
    } else {
        ReactionError::permanent(code, message)
    }
}

/// Classifies what slack-morphism returned instead of a decoded reply.
pub(crate) fn client_error(error: &SlackClientError) -> ReactionError {
    match error {
        SlackClientError::ApiError(api_error) => slack_error(&api_error.code),

        SlackClientError::RateLimitError(rate_limit) => {
            let code = rate_limit.code.as_deref().unwrap_or("http_429");
            let (code, _) = truncate_chars(code, MAX_CODE_CHARS);
            let message = match rate_limit.retry_after {
                Some(delay) => format!("slack is rate limiting us; retry after {delay:?}"),
                None => "slack is rate limiting us".to_owned(),
            };
            ReactionError::rate_limited(rate_limit.retry_after, code, message)
        }

        SlackClientError::HttpError(http_error) => http_status(http_error.status_code),

        SlackClientError::HttpProtocolError(protocol_error) => {
            match protocol_error
                .cause
                .as_deref()
                .and_then(|cause| cause.downcast_ref::<hyper_util::client::legacy::Error>())
            {
                Some(transport) => transport_error(transport),
                // Request building failed (bad URL or header): the same request
                // fails the same way next time.
                None => ReactionError::permanent(
                    "invalid_request",
                    "the request to slack could not be built",
                ),
            }
        }

        SlackClientError::ProtocolError(protocol_error) => ReactionError::retryable(
            "invalid_reply",
            format!(
                "slack's reply is not a chat.postMessage answer: {}",
                protocol_error.json_error
            ),
        )
        .with_possible_duplicate(),

        SlackClientError::SystemError(_) => {
            ReactionError::retryable("connection_error", "reading slack's reply failed")
                .with_possible_duplicate()
        }

        SlackClientError::EndOfStream(_) | SlackClientError::SocketModeProtocolError(_) => {
            ReactionError::retryable("unexpected_error", format!("slack client failed: {error}"))
                .with_possible_duplicate()
        }
    }
}

/// Classifies an HTTP status slack-morphism did not decode (anything but 200
/// and 429).
pub(crate) fn http_status(status: http::StatusCode) -> ReactionError {
    let code = format!("http_{}", status.as_u16());
    let message = format!("slack answered HTTP {status}");

    if status.is_server_error() || status == http::StatusCode::REQUEST_TIMEOUT {
        ReactionError::retryable(code, message)
    } else {
        ReactionError::permanent(code, message)
    }
}

/// Removes every occurrence of the token from the error, in case the server
/// echoed it back in a code or a message.
pub(crate) fn scrub(mut error: ReactionError, token: &str) -> ReactionError {
    if !token.is_empty() {
        if error.code.contains(token) {
            error.code = error.code.replace(token, "[redacted]");
        }
        if error.message.contains(token) {
            error.message = error.message.replace(token, "[redacted]");
        }
    }
    error
}

fn transport_error(error: &hyper_util::client::legacy::Error) -> ReactionError {
    // The chain of sources says what happened (refused, reset, timed out) and
    // holds no header, so it is safe to keep.
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }

    if error.is_connect() {
        ReactionError::retryable(
            "connection_failed",
            format!("cannot connect to slack: {detail}"),
        )
    } else {
        // The request may have been written before the connection broke.
        ReactionError::retryable("connection_error", format!("slack call failed: {detail}"))
            .with_possible_duplicate()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use area_core::ErrorClass;
    use slack_morphism::errors::{SlackClientApiError, SlackClientHttpError, SlackRateLimitError};

    use super::*;

    #[test]
    fn slack_codes_keep_their_name_and_get_their_class() {
        for code in [
            "invalid_auth",
            "not_authed",
            "account_inactive",
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "msg_too_long",
            "no_text",
            "invalid_blocks",
            "something_new",
        ] {
            let error = slack_error(code);
            assert_eq!(error.class, ErrorClass::Permanent, "{code}");
            assert_eq!(error.code, code);
        }
        for code in RETRYABLE_CODES {
            assert_eq!(slack_error(code).class, ErrorClass::Retryable, "{code}");
        }
        let limited = slack_error("ratelimited");
        assert_eq!(limited.class, ErrorClass::RateLimited { retry_after: None });
    }

    #[test]
    fn rate_limit_keeps_retry_after() {
        let error = client_error(&SlackClientError::RateLimitError(
            SlackRateLimitError::new().with_retry_after(Duration::from_secs(7)),
        ));
        assert_eq!(
            error.class,
            ErrorClass::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(error.code, "http_429");
    }

    #[test]
    fn server_errors_and_408_are_retryable_other_statuses_permanent() {
        for status in [500, 502, 503, 504, 408] {
            let status = http::StatusCode::from_u16(status).unwrap();
            let error = client_error(&SlackClientError::HttpError(SlackClientHttpError::new(
                status,
            )));
            assert_eq!(error.class, ErrorClass::Retryable, "{status}");
            assert_eq!(error.code, format!("http_{}", status.as_u16()));
        }
        for status in [400, 401, 403, 404, 302] {
            let error = http_status(http::StatusCode::from_u16(status).unwrap());
            assert_eq!(error.class, ErrorClass::Permanent, "{status}");
        }
    }

    #[test]
    fn long_codes_are_bounded() {
        let error = client_error(&SlackClientError::ApiError(SlackClientApiError::new(
            "x".repeat(1000),
        )));
        assert_eq!(error.code.chars().count(), MAX_CODE_CHARS);
    }

    #[test]
    fn scrub_removes_the_token() {
        let error = ReactionError::permanent("Bearer xoxb-1", "got Bearer xoxb-1 back");
        let error = scrub(error, "xoxb-1");
        assert_eq!(error.code, "Bearer [redacted]");
        assert_eq!(error.message, "got Bearer [redacted] back");
    }
}
