//! The Slack reaction of the AREA worker: posts a message with `chat.postMessage`
//! through slack-morphism.
//!
//! A reaction row's config holds `channel`, `text` (required unless `blocks` is
//! given), optional `blocks` (Block Kit, passed through untouched) and
//! `thread_ts`; templates are rendered by the engine before the reaction runs.
//! The bot token, API URL and timeout come from the worker's environment through
//! [`SlackSettings`], never from the row.
//!
//! Failures are classified for the engine's retry policy: `ok: false` is never a
//! success; `ratelimited` and HTTP 429 are rate limited with Slack's
//! `Retry-After`; Slack's transient codes, HTTP 5xx, connection failures,
//! timeouts and unreadable replies are retryable; every other Slack error code
//! is permanent and kept as the error's `code`. The engine owns retries, so the
//! client never retries on its own.
//!
//! ```no_run
//! use area_core::Reaction;
//! use reaction_slack::{SlackReaction, SlackSettings};
//!
//! # fn main() -> Result<(), reaction_slack::Error> {
//! let reaction = SlackReaction::new(SlackSettings::from_env()?)?;
//! assert_eq!(reaction.service(), "slack");
//! # Ok(())
//! # }
//! ```
//!
//! # Limitations
//!
//! - Text longer than 40,000 characters is cut to that length (on a character
//!   boundary) and the output says `truncated: true`; blocks are sent as given.
//! - slack-morphism keeps `Retry-After` only for HTTP 429: a `ratelimited` code
//!   in an HTTP 200 reply is rate limited without a hint, and a 429 whose JSON
//!   body has no `ok` is an unreadable reply (retryable, no hint).

mod classify;
mod connector;
mod error;
mod message;
mod reaction;
mod settings;

pub use error::Error;
pub use message::MAX_TEXT_CHARS;
pub use reaction::{METADATA_EVENT_TYPE, SlackReaction};
pub use settings::{
    API_URL_VARIABLE, DEFAULT_API_URL, DEFAULT_TIMEOUT, SlackSettings, TIMEOUT_VARIABLE,
    TOKEN_FILE_VARIABLE, TOKEN_VARIABLE,
};
