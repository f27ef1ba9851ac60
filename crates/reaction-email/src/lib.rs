//! The `email` reaction of the AREA worker: sends one mail per execution
//! through an SMTP relay with lettre, over tokio and rustls (ring provider).
//!
//! The relay, its TLS mode and the credentials come from the worker's
//! configuration ([`SmtpSettings::from_env`]); each reaction row only says what
//! to send. Its configuration (already rendered by the engine) is a JSON object:
//!
//! | field | type | |
//! |---|---|---|
//! | `to` | address or list of addresses | required, not empty |
//! | `cc` | address or list of addresses | optional |
//! | `reply_to` | address | optional |
//! | `subject` | string | required |
//! | `text`, `html` | string | at least one; both send `multipart/alternative` |
//!
//! Addresses may carry a display name (`Ann <ann@example.com>`). Unknown fields
//! are rejected, except `retry`, which the engine reads.
//!
//! Every message gets a Message-ID generated here and the execution's dedup key
//! in an `X-Area-Dedup-Key` header; both the Message-ID and the relay's final
//! reply are kept in the execution's output. Failures are classified by SMTP
//! reply code and by how far the conversation got: see `classify`.
//!
//! ```no_run
//! use reaction_email::{EmailReaction, SmtpSettings};
//!
//! # fn main() -> Result<(), reaction_email::Error> {
//! let reaction = EmailReaction::new(SmtpSettings::from_env()?)?;
//! # let _ = reaction;
//! # Ok(())
//! # }
//! ```

mod classify;
mod client;
mod config;
mod error;
mod message;
mod reaction;
mod settings;

pub use error::Error;
pub use message::DEDUP_KEY_HEADER;
pub use reaction::{EmailReaction, SERVICE};
pub use settings::{DEFAULT_TIMEOUT, SmtpSettings, TlsMode};
