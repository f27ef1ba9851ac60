//! The `noop` reaction: an attempt that does nothing and always succeeds.
//!
//! It exists to measure the engine's own cost (`cargo xtask bench`, scenario
//! `noop`): with no service on the other end, what remains of an execution is
//! the stream reads and acks, the execution row's insert, claim and record, and
//! the engine's bookkeeping. It is behind the non-default cargo feature `noop`
//! and is never part of a shipped binary.

use area_core::{ConfigError, Outcome, Reaction, ReactionContext, ReactionError};
use async_trait::async_trait;
use serde_json::Value;

/// The service name of the no-op reaction in `reactions.service`.
pub const SERVICE: &str = "noop";

/// A reaction whose attempts succeed at once without any I/O.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopReaction;

#[async_trait]
impl Reaction for NoopReaction {
    fn service(&self) -> &'static str {
        SERVICE
    }

    /// Nothing is delivered anywhere, so a repeat is harmless.
    fn deduplicates_by_key(&self) -> bool {
        true
    }

    fn validate(&self, _config: &Value) -> Result<(), ConfigError> {
        Ok(())
    }

    async fn execute(&self, _context: &ReactionContext) -> Result<Outcome, ReactionError> {
        Ok(Outcome::new(Value::Null))
    }
}
