//! The domain of the AREA reaction worker, free of any I/O.
//!
//! A reaction crate depends on this crate alone: it implements [`Reaction`] for one
//! external service and classifies its failures with [`ReactionError`]. The worker
//! decodes [`Event`]s from the stream, renders each reaction's configuration with
//! [`template`], runs the reaction and asks the [`RetryPolicy`] what to do next.

pub mod event;
pub mod reaction;
pub mod registry;
pub mod retry;
pub mod template;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod text;

pub use event::{AreaId, DecodeLimits, Event, EventError, EventId};
pub use reaction::{ConfigError, ErrorClass, Outcome, Reaction, ReactionContext, ReactionError};
pub use registry::Registry;
pub use retry::{RetryDecision, RetryPolicy, RetryPolicyError};
pub use template::{TemplateError, render_config, render_config_owned};
