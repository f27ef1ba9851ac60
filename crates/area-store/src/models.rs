//! Rows as the worker reads them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::schema::executions;

/// Where an execution stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Created by fan-out; its job is in the service's stream.
    Queued,
    /// An attempt holds the lease.
    Running,
    /// Delivered.
    Ok,
    /// Failed and waiting for its next attempt at `next_attempt_at`.
    Retry,
    /// Given up: permanent error or retries exhausted.
    Failed,
    /// Canceled by a person; never attempted again.
    Canceled,
}

impl ExecutionStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 6] = [
        Self::Queued,
        Self::Running,
        Self::Ok,
        Self::Retry,
        Self::Failed,
        Self::Canceled,
    ];

    /// The name stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Ok => "ok",
            Self::Retry => "retry",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    /// Whether a row in this status always has an `error`: `retry`, `failed`
    /// and `canceled`. The record and cancel statements keep it so.
    pub fn has_error(self) -> bool {
        matches!(self, Self::Retry | Self::Failed | Self::Canceled)
    }

    /// Whether no attempt will follow without a person asking for one.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Ok | Self::Failed | Self::Canceled)
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for ExecutionStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| format!("unknown execution status {text:?}"))
    }
}

/// A whole execution row.
#[derive(Clone, Debug, Queryable, Selectable, Serialize)]
#[diesel(table_name = executions, check_for_backend(diesel::pg::Pg))]
pub struct ExecutionRow {
    /// Primary key.
    pub id: Uuid,
    /// The AREA of the event.
    pub area_id: Uuid,
    /// The reaction run.
    pub reaction_id: Uuid,
    /// The event's id.
    pub event_id: String,
    /// The reaction's service.
    pub service: String,
    /// One of the [`ExecutionStatus`] names.
    pub status: String,
    /// Attempts started so far.
    pub attempt: i32,
    /// When fan-out created the row.
    pub queued_at: DateTime<Utc>,
    /// When the latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the execution reached `ok` or `failed`.
    pub finished_at: Option<DateTime<Utc>>,
    /// When the next attempt is due, in `retry`.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The event as received.
    pub input_payload: Value,
    /// What the service answered to the successful attempt.
    pub output_payload: Option<Value>,
    /// The latest attempt's error.
    pub error: Option<Value>,
    /// Every finished attempt, oldest first.
    pub attempts: Value,
    /// Correlation id of the event.
    pub correlation_id: Option<Uuid>,
    /// The worker holding the lease while `running`.
    pub locked_by: Option<String>,
    /// When the lease ends.
    pub lease_until: Option<DateTime<Utc>>,
    /// `event_id:reaction_id`, unique.
    pub dedup_key: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl ExecutionRow {
    /// The parsed status.
    pub fn status(&self) -> ExecutionStatus {
        self.status
            .parse()
            .expect("the status column is CHECK-constrained to known names")
    }
}
