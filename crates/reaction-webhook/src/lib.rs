//! The `webhook` reaction of the AREA worker: an HTTP request to a URL of the
//! reaction's choosing, signed Standard Webhooks style, sent over a shared
//! pool of keep-alive connections.
//!
//! ```no_run
//! use area_core::Reaction;
//! use reaction_webhook::{WebhookReaction, WebhookSettings};
//!
//! # fn main() -> Result<(), reaction_webhook::Error> {
//! let settings = WebhookSettings::from_env()?;
//! let reaction = WebhookReaction::new(settings)?;
//! assert_eq!(reaction.service(), "webhook");
//! tracing::info!(allow = %reaction.describe_allow_list(), "webhook reaction ready");
//! # Ok(())
//! # }
//! ```
//!
//! What an attempt does:
//! - **Configuration**: `url`, `method`, `headers`, `body`, `secret`,
//!   `timeout_ms`, checked field by field; unknown fields are rejected by name
//!   (except `retry`, which belongs to the engine).
//! - **Idempotency**: the execution's dedup key travels in `webhook-id` on every
//!   attempt, so a receiver can drop the duplicates that at-least-once delivery
//!   brings. With a `secret`, `webhook-timestamp` and `webhook-signature` follow
//!   the Standard Webhooks specification.
//! - **Bounds**: one deadline covers connecting, sending and reading the
//!   response; at most [`WebhookSettings::max_response_bytes`] of the body are
//!   read and kept, cut on a character boundary.
//! - **Destinations**: loopback, private, link-local and other special-purpose
//!   addresses are refused unless the allow-list (`AREA_WEBHOOK_ALLOW`) names
//!   them. The check applies to the addresses actually connected to, after DNS
//!   resolution, so DNS rebinding cannot get around it.
//! - **Classification**: 2xx is an outcome; 408 and 5xx are retryable; 429 is
//!   rate limited with its `Retry-After`; redirects and other statuses are
//!   permanent (`http_302`, `http_404`); connection failures are retryable
//!   (`connect`), and so are timeouts (`timeout`); a blocked address is
//!   permanent (`blocked_destination`).
//!
//! # Limitations
//!
//! - Redirects are never followed; a receiver that moved must be reconfigured.
//! - HTTP proxies are not supported: the destination check needs to see the
//!   receiver's own addresses.
//! - A timeout before the response arrives is reported as a possible duplicate,
//!   since the request may have reached the receiver, even when it was still
//!   connecting.
//! - Once the status line has arrived, the attempt is classified by its status:
//!   a 2xx whose body stops early (deadline or broken connection) is still
//!   delivered, with `truncated: true` and `body_error` saying why.
//! - The Standard Webhooks `webhook-id` is the execution's dedup key; a key
//!   with non-ASCII characters travels as UTF-8 bytes, which some receivers'
//!   libraries read differently.

mod allow;
mod classify;
mod client;
mod config;
mod destination;
mod error;
mod network;
mod reaction;
mod resolve;
mod response;
mod settings;
mod signature;

pub use allow::{AllowRule, ParseAllowRuleError, describe_allow_list, parse_allow_list};
pub use error::Error;
pub use network::{IpNetwork, ParseNetworkError};
pub use reaction::{SERVICE, WebhookReaction};
pub use settings::{
    ALLOW_VARIABLE, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_POOL_IDLE_TIMEOUT,
    DEFAULT_POOL_MAX_IDLE_PER_HOST, DEFAULT_TIMEOUT, MAX_RESPONSE_BYTES_VARIABLE,
    POOL_IDLE_TIMEOUT_VARIABLE, POOL_MAX_IDLE_PER_HOST_VARIABLE, TIMEOUT_VARIABLE, WebhookSettings,
};
