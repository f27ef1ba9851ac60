//! Redis Streams for the AREA worker: the event stream, one job stream per
//! service, the dead-letter stream and the retry schedule.
//!
//! # How the streams are used
//!
//! Producers append events to `<prefix>events`. Every worker reads it through one
//! consumer group (`area-workers` by default), so each entry goes to one consumer;
//! the entry stays in the group's pending list until the consumer acknowledges it,
//! which it does only after the entry's effects are stored. A consumer that dies
//! leaves its entries pending, and any live consumer claims entries idle longer
//! than a threshold (XAUTOCLAIM) and finishes them.
//!
//! Fan-out appends one job per execution to `<prefix>jobs:<service>`, read the
//! same way by the workers that serve that service. Entries that can never be
//! processed go to `<prefix>events:dead` with the reason. Retries wait in the
//! sorted set `<prefix>retries`, scored by due time, and are moved back to their
//! job stream when due.
//!
//! Blocking reads each run on a connection of their own, so that a read that
//! waits for new entries never holds up acknowledgements and publishes, which
//! share one multiplexed connection.

mod connection;
mod consumer;
mod dead_letter;
mod entry;
mod error;
mod info;
mod keys;
mod publisher;
mod retries;

pub use connection::{Redis, RedisOptions};
pub use consumer::{Claimed, Consumer};
pub use dead_letter::{DeadLetter, DeadLetterReason};
pub use entry::Entry;
pub use error::Error;
pub use info::{ConsumerInfo, GroupInfo, StreamInfo};
pub use keys::StreamKeys;
pub use publisher::{EVENT_FIELD, EXECUTION_FIELD, Job};
pub use retries::ScheduledRetry;
