//! Reading what a receiver answered, within bounds: the body up to a cap and
//! a deadline, and the `Retry-After` header.
//!
//! The body is streamed chunk by chunk and reading stops at the cap, so an
//! endless body costs at most the cap (plus one chunk in flight) and the rest
//! is never read; the connection is then dropped rather than pooled. A body that
//! trickles in stops at the attempt's deadline. Either way the status line has
//! already arrived, so the attempt is classified by its status with the part of
//! the body that was read.

use std::time::{Duration, SystemTime};

use area_core::text::truncate_on_char_boundary;
use tokio::time::Instant;

/// The part of a response body that was read, as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BodyExcerpt {
    /// The body read so far, as lossy UTF-8 cut on a character boundary.
    pub text: String,
    /// Whether the body goes on past `text`: cut at the cap or interrupted.
    pub truncated: bool,
    /// Why reading stopped before the end, other than the cap.
    pub interruption: Option<Interruption>,
}

/// Why a body was not read to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interruption {
    /// The attempt's deadline passed while the body was still arriving.
    Timeout,
    /// The connection failed in the middle of the body.
    Connection,
}

impl Interruption {
    /// The word stored in the outcome's `body_error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connection => "connection",
        }
    }
}

/// Reads at most `cap` bytes of `response`'s body, stopping at `deadline`.
pub(crate) async fn read_excerpt(
    response: &mut reqwest::Response,
    cap: usize,
    deadline: Instant,
) -> BodyExcerpt {
    let expected = response.content_length().unwrap_or(0);
    let initial = usize::try_from(expected).unwrap_or(cap).min(cap);
    let mut bytes = Vec::with_capacity(initial);
    let mut is_capped = false;
    let mut interruption = None;

    loop {
        let chunk = match tokio::time::timeout_at(deadline, response.chunk()).await {
            Err(_elapsed) => {
                interruption = Some(Interruption::Timeout);
                break;
            }
            Ok(Err(_error)) => {
                interruption = Some(Interruption::Connection);
                break;
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => chunk,
        };
        let room = cap - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            is_capped = true;
            break;
        }
        bytes.extend_from_slice(&chunk);
    }

    let truncated = is_capped || interruption.is_some();
    BodyExcerpt {
        text: excerpt_text(&bytes, truncated, cap),
        truncated,
        interruption,
    }
}

/// `bytes` as text of at most `cap` bytes: a character cut by the end of a
/// truncated body is dropped rather than shown as a replacement character,
/// and invalid UTF-8 elsewhere becomes U+FFFD.
pub(crate) fn excerpt_text(bytes: &[u8], truncated: bool, cap: usize) -> String {
    let bytes = if truncated {
        without_partial_last_char(bytes)
    } else {
        bytes
    };
    let text = String::from_utf8_lossy(bytes);
    // Replacement characters are longer than the bytes they replace.
    let (text, _) = truncate_on_char_boundary(&text, cap);
    text.to_owned()
}

/// Parses `Retry-After`: delta-seconds or an HTTP-date; a date in the past
/// means now. Anything else gives `None`, so the retry schedule applies.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        return value.parse().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `bytes` without an incomplete UTF-8 sequence at its very end.
fn without_partial_last_char(bytes: &[u8]) -> &[u8] {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        let is_continuation = byte & 0b1100_0000 == 0b1000_0000;
        if is_continuation {
            continue;
        }
        let width = match byte {
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => 1,
        };
        return if width > back {
            &bytes[..bytes.len() - back]
        } else {
            bytes
        };
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_a_character_cut_by_the_cap() {
        let text = "aé東✅".as_bytes();
        assert_eq!(excerpt_text(&text[..2], true, 2), "a");
        assert_eq!(excerpt_text(&text[..3], true, 3), "aé");
        assert_eq!(excerpt_text(&text[..5], true, 5), "aé");
        assert_eq!(excerpt_text(&text[..6], true, 6), "aé東");
        assert_eq!(excerpt_text(&text[..8], true, 8), "aé東");
        assert_eq!(excerpt_text(text, true, 9), "aé東✅");
        assert_eq!(excerpt_text(text, false, 10), "aé東✅");
    }

    #[test]
    fn keeps_invalid_bytes_visible_and_within_the_cap() {
        assert_eq!(
            excerpt_text(b"ok\xff\xfe", false, 100),
            "ok\u{fffd}\u{fffd}"
        );
        // Two invalid bytes become six bytes of replacement characters.
        assert_eq!(excerpt_text(b"ok\xff\xfe", false, 4), "ok");
        // An incomplete sequence at the end of a complete body is shown, not hidden.
        assert_eq!(excerpt_text(b"ok\xe6", false, 100), "ok\u{fffd}");
    }

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:45 GMT", now),
            Some(Duration::from_secs(45))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for garbage in [
            "",
            "soon",
            "-1",
            "1.5",
            "3 seconds",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_retry_after(garbage, now), None, "{garbage:?}");
        }
    }
}
