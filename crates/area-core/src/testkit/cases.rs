//! The cases a harness runs that need more than a config: a failure with its
//! expected classification, and an attempt against a silent peer.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::sample::context;
use crate::reaction::{ErrorClass, Reaction, ReactionContext};

/// A failure the reaction must produce, and how it must classify it.
pub struct Failure {
    pub(super) name: String,
    pub(super) reaction: Option<Arc<dyn Reaction>>,
    pub(super) context: ReactionContext,
    pub(super) class: ErrorClass,
    pub(super) code: String,
    pub(super) possible_duplicate: Option<bool>,
}

/// An attempt against a peer that never answers.
pub struct Hang {
    pub(super) reaction: Option<Arc<dyn Reaction>>,
    pub(super) config: Value,
    pub(super) timeout: Duration,
    pub(super) grace: Duration,
}

impl Failure {
    /// `config` must fail as retryable with `code`.
    pub fn retryable(name: &str, config: Value, code: &str) -> Self {
        Self::new(name, config, ErrorClass::Retryable, code)
    }

    /// `config` must fail as permanent with `code`.
    pub fn permanent(name: &str, config: Value, code: &str) -> Self {
        Self::new(name, config, ErrorClass::Permanent, code)
    }

    /// `config` must fail as rate limited with `code` and exactly `retry_after`.
    pub fn rate_limited(
        name: &str,
        config: Value,
        code: &str,
        retry_after: Option<Duration>,
    ) -> Self {
        Self::new(name, config, ErrorClass::RateLimited { retry_after }, code)
    }

    /// Runs this case on `reaction` rather than the harness's own, e.g. one
    /// configured for another peer.
    pub fn on(mut self, reaction: impl Reaction) -> Self {
        self.reaction = Some(Arc::new(reaction));
        self
    }

    /// As [`Self::on`], for a reaction already behind an `Arc`.
    pub fn on_shared(mut self, reaction: Arc<dyn Reaction>) -> Self {
        self.reaction = Some(reaction);
        self
    }

    /// The error's `possible_duplicate` must be `expected`.
    pub fn possible_duplicate(mut self, expected: bool) -> Self {
        self.possible_duplicate = Some(expected);
        self
    }

    /// Runs with an attempt timeout of `timeout` instead of the default.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.context.timeout = timeout;
        self
    }

    fn new(name: &str, config: Value, class: ErrorClass, code: &str) -> Self {
        Self {
            name: name.to_owned(),
            reaction: None,
            context: context(config),
            class,
            code: code.to_owned(),
            possible_duplicate: None,
        }
    }
}

impl Hang {
    /// An attempt running `config` against a peer that never answers, with a
    /// one-second attempt timeout and one second of grace.
    pub fn new(config: Value) -> Self {
        Self {
            reaction: None,
            config,
            timeout: Duration::from_secs(1),
            grace: Duration::from_secs(1),
        }
    }

    /// Runs this case on `reaction` rather than the harness's own.
    pub fn on(mut self, reaction: impl Reaction) -> Self {
        self.reaction = Some(Arc::new(reaction));
        self
    }

    /// The attempt timeout given in the context.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long past the timeout the reaction may still return by itself
    /// before the harness cancels it.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}
