//! The `Reaction` trait that every reaction crate implements, with the context it
//! receives and the outcome and error types it returns.
//!
//! A reaction owns exactly one decision the engine cannot make for it: how a
//! failure of its service should be classified. [`ReactionError`] carries that
//! classification as an [`ErrorClass`]; the engine turns it into a retry or a
//! final failure with the [`crate::RetryPolicy`].

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::event::Event;

/// A side effect triggered by an event, for one external service.
#[async_trait]
pub trait Reaction: Send + Sync + 'static {
    /// The service name stored in `reactions.service`, e.g. `webhook`.
    fn service(&self) -> &'static str;

    /// Checks a rendered configuration before any I/O. The error names the field.
    fn validate(&self, config: &Value) -> Result<(), ConfigError>;

    /// Runs one attempt. The engine bounds it with [`ReactionContext::timeout`].
    async fn execute(&self, context: &ReactionContext) -> Result<Outcome, ReactionError>;

    /// Whether the service can drop a repeated delivery by its idempotency key
    /// ([`ReactionContext::dedup_key`]), so an attempt whose outcome is unknown
    /// may always be retried. Reactions that cannot be undone and have no such
    /// key (an email, a chat message) keep the default, `false`, and their
    /// in-doubt attempts follow the worker's in-doubt policy.
    fn deduplicates_by_key(&self) -> bool {
        false
    }
}

/// What an attempt is given: the rendered configuration, the event and where the
/// attempt stands.
#[derive(Clone, Debug)]
pub struct ReactionContext {
    /// The reaction's configuration with every template rendered.
    pub config: Value,
    /// The event that triggered the reaction.
    pub event: Event,
    /// The execution this attempt belongs to.
    pub execution_id: Uuid,
    /// The reaction row the execution was created from.
    pub reaction_id: Uuid,
    /// Stable across attempts of one execution; reactions pass it to services as an
    /// idempotency key so a receiver can drop duplicates.
    pub dedup_key: String,
    /// Number of this attempt, starting at 1.
    pub attempt: u32,
    /// The time this attempt may take; the engine cancels it afterwards.
    pub timeout: Duration,
}

/// The result of a successful attempt, stored as the execution's `output_payload`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Outcome {
    /// What the service answered, in a form worth keeping (bounded by the reaction).
    pub output: Value,
}

impl Outcome {
    /// An outcome carrying `output`.
    pub fn new(output: Value) -> Self {
        Self { output }
    }
}

/// How the engine should treat a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "class")]
pub enum ErrorClass {
    /// May succeed later: connection errors, timeouts, 5xx, SMTP 4xx.
    Retryable,
    /// The service asked us to slow down; `retry_after` is its hint, if any.
    RateLimited {
        /// The server's Retry-After, when it sent a usable one.
        #[serde(with = "optional_millis", rename = "retry_after_ms")]
        retry_after: Option<Duration>,
    },
    /// Will fail the same way every time: bad config, 4xx, SMTP 5xx, bad credentials.
    Permanent,
}

/// A failed attempt, classified by the reaction.
#[derive(Clone, Debug, PartialEq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ReactionError {
    /// Whether and how to retry.
    #[serde(flatten)]
    pub class: ErrorClass,
    /// A short stable code, e.g. `http_500`, `smtp_550`, `channel_not_found`.
    pub code: String,
    /// A human-readable explanation. Never contains a secret.
    pub message: String,
    /// The attempt may have reached the service even though it failed, so a retry
    /// may deliver twice (e.g. the connection dropped after the SMTP data).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub possible_duplicate: bool,
}

impl ReactionError {
    /// A failure that may succeed if tried again.
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Retryable, code, message)
    }

    /// A failure that will not succeed if tried again.
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Permanent, code, message)
    }

    /// The service is rate limiting us; `retry_after` is its hint.
    pub fn rate_limited(
        retry_after: Option<Duration>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(ErrorClass::RateLimited { retry_after }, code, message)
    }

    /// Marks the failure as one that may have delivered anyway.
    pub fn with_possible_duplicate(mut self) -> Self {
        self.possible_duplicate = true;
        self
    }

    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(self.class, ErrorClass::Permanent)
    }

    /// The attempt ran out of time; retryable, and the request may have arrived.
    pub fn timed_out(timeout: Duration) -> Self {
        Self::retryable(
            "timeout",
            format!("the attempt took longer than {timeout:?}"),
        )
        .with_possible_duplicate()
    }

    fn new(class: ErrorClass, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            class,
            code: code.into(),
            message: message.into(),
            possible_duplicate: false,
        }
    }
}

impl From<ConfigError> for ReactionError {
    fn from(error: ConfigError) -> Self {
        Self::permanent("invalid_config", error.to_string())
    }
}

/// A configuration the reaction cannot run with. Always permanent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid config field `{field}`: {reason}")]
pub struct ConfigError {
    /// The offending field, dotted for nested ones (`headers.Authorization`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// A config error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

mod optional_millis {
    use std::time::Duration;

    use serde::Serializer;

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.serialize_some(&(duration.as_millis() as u64)),
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_class_code_and_message_for_storage() {
        let error =
            ReactionError::rate_limited(Some(Duration::from_secs(3)), "http_429", "slow down");
        let json = serde_json::to_value(&error).unwrap();
        assert_eq!(json["class"], "rate_limited");
        assert_eq!(json["retry_after_ms"], 3000);
        assert_eq!(json["code"], "http_429");
        assert!(json.get("possible_duplicate").is_none());
        let json = serde_json::to_value(ReactionError::timed_out(Duration::from_secs(1))).unwrap();
        assert_eq!(json["class"], "retryable");
        assert_eq!(json["possible_duplicate"], true);
    }

    #[test]
    fn config_errors_are_permanent_and_name_the_field() {
        let error: ReactionError = ConfigError::new("url", "missing").into();
        assert!(!error.is_transient());
        assert_eq!(error.message, "invalid config field `url`: missing");
    }
}
