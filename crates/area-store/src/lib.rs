//! PostgreSQL storage of the AREA worker: the schema, the embedded migrations and
//! the queries of the execution lifecycle.
//!
//! Every query on the hot path works on a batch and is one statement: fan-out
//! inserts all execution rows of a batch of events at once, the executor claims
//! a batch of jobs at once and records a batch of outcomes at once. Each status
//! change is a compare-and-set on the status (and, for running rows, the lease
//! holder and attempt) that the caller expects, so two workers can never both
//! move one execution.

mod error;
mod executions;
mod fanout;
mod migrate;
mod models;
mod pool;
mod prepared;
mod queries;
mod schema;
mod seed;

pub use error::Error;
pub use executions::{
    AttemptRecord, ClaimedExecution, RecordedStatus, StaleExecution, UnsettledExecution,
};
pub use fanout::{AreaPlan, NewExecution, PlannedReaction, QueuedExecution};
pub use migrate::{create_database_if_missing, database_name, pending_migrations, run_migrations};
pub use models::{ExecutionRow, ExecutionStatus};
pub use pool::{Store, StoreOptions};
pub use queries::{CancelOutcome, ExecutionCursor, ExecutionFilter, RetryOutcome, StatusCount};
pub use seed::{NewArea, NewReaction};
