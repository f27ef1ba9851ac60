//! Queries of the monitoring API: listing executions with filters and a keyset
//! cursor, execution statistics, and the two transitions a person may ask for,
//! cancel and retry.
//!
//! Listing walks the `(queued_at DESC, id DESC)` index: the cursor is the last
//! row's `(queued_at, id)` and the next page starts strictly after it, so pages
//! neither skip nor repeat rows while new executions arrive. `retry`, `failed`
//! and `canceled` rows, which are few, have a partial index of their own in the
//! same order. No index covers `status` (the engine's updates would no longer
//! be HOT), so listing `queued` or `running` rows walks the executions newest
//! first: quick while they are recent, a scan of the history when fewer than a
//! page match; `queued_from` bounds it.
//!
//! Cancel and retry are each one guarded statement, like every other status
//! change: cancel moves `queued`, `retry` and `running` rows (and, so that it is
//! idempotent, `canceled` ones) to `canceled`; retry moves `failed` and
//! `canceled` rows to a `retry` that is due now. A running attempt that is
//! canceled is not interrupted, but its result no longer changes the row: the
//! recorder only writes rows that are still `running` under its lease.

use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::error::Error;
use crate::models::{ExecutionRow, ExecutionStatus};
use crate::pool::Store;
use crate::schema::executions;

/// Which executions to list; every field that is set must match.
#[derive(Clone, Debug, Default)]
pub struct ExecutionFilter {
    /// Only this status.
    pub status: Option<ExecutionStatus>,
    /// Only this service.
    pub service: Option<String>,
    /// Only this AREA.
    pub area_id: Option<Uuid>,
    /// Only this reaction.
    pub reaction_id: Option<Uuid>,
    /// Only this event.
    pub event_id: Option<String>,
    /// Queued at or after this instant.
    pub queued_from: Option<DateTime<Utc>>,
    /// Queued strictly before this instant.
    pub queued_until: Option<DateTime<Utc>>,
}

/// Where a page of executions starts: strictly after this row, in listing order
/// (newest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecutionCursor {
    /// The last listed row's `queued_at`.
    pub queued_at: DateTime<Utc>,
    /// The last listed row's id.
    pub id: Uuid,
}

impl ExecutionCursor {
    /// The cursor that continues after `row`.
    pub fn after(row: &ExecutionRow) -> Self {
        Self {
            queued_at: row.queued_at,
            id: row.id,
        }
    }
}

/// Number of executions of one service in one status.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct StatusCount {
    /// The service.
    #[diesel(sql_type = Text)]
    pub service: String,
    /// One of the [`ExecutionStatus`] names.
    #[diesel(sql_type = Text)]
    pub status: String,
    /// How many.
    #[diesel(sql_type = diesel::sql_types::Int8)]
    pub count: i64,
}

/// What a cancel request did.
#[derive(Clone, Debug)]
pub enum CancelOutcome {
    /// The execution is canceled now; `was` is its status before the request
    /// (`canceled` when it already was: cancel is idempotent).
    Canceled {
        /// The row after the change.
        row: Box<ExecutionRow>,
        /// The status it had.
        was: ExecutionStatus,
    },
    /// The execution had already finished (`ok` or `failed`): nothing changed.
    Finished(ExecutionStatus),
    /// No execution has that id.
    NotFound,
}

/// What a retry request did.
#[derive(Clone, Debug)]
pub enum RetryOutcome {
    /// The execution waits in `retry`, due now; its next attempt will be
    /// `attempt + 1`. The caller enqueues its job.
    Scheduled(Box<ExecutionRow>),
    /// Only `failed` and `canceled` executions can be retried by hand.
    NotRetryable(ExecutionStatus),
    /// No execution has that id.
    NotFound,
}

#[derive(QueryableByName)]
struct PreviousStatus {
    #[diesel(sql_type = Text)]
    previous: String,
}

impl Store {
    /// Up to `limit` executions matching `filter`, newest first, starting after
    /// `after`.
    pub async fn list_executions(
        &self,
        filter: &ExecutionFilter,
        after: Option<ExecutionCursor>,
        limit: i64,
    ) -> Result<Vec<ExecutionRow>, Error> {
        let mut query = executions::table
            .select(ExecutionRow::as_select())
            .order((executions::queued_at.desc(), executions::id.desc()))
            .limit(limit)
            .into_boxed();
        if let Some(status) = filter.status {
            query = query.filter(executions::status.eq(status.as_str()));
            if status.has_error() {
                // Always true of these statuses; it lets PostgreSQL walk the
                // partial index of troubled rows instead of every execution.
                query = query.filter(executions::error.is_not_null());
            }
        }
        if let Some(service) = &filter.service {
            query = query.filter(executions::service.eq(service.clone()));
        }
        if let Some(area_id) = filter.area_id {
            query = query.filter(executions::area_id.eq(area_id));
        }
        if let Some(reaction_id) = filter.reaction_id {
            query = query.filter(executions::reaction_id.eq(reaction_id));
        }
        if let Some(event_id) = &filter.event_id {
            query = query.filter(executions::event_id.eq(event_id.clone()));
        }
        if let Some(from) = filter.queued_from {
            query = query.filter(executions::queued_at.ge(from));
        }
        if let Some(until) = filter.queued_until {
            query = query.filter(executions::queued_at.lt(until));
        }
        if let Some(cursor) = after {
            // A row comparison, so that PostgreSQL walks the two-column index.
            query = query.filter(
                sql::<Bool>("(executions.queued_at, executions.id) < (")
                    .bind::<Timestamptz, _>(cursor.queued_at)
                    .sql(", ")
                    .bind::<SqlUuid, _>(cursor.id)
                    .sql(")"),
            );
        }

        let mut connection = self.connection().await?;
        Ok(query.load(&mut connection).await?)
    }

    /// Number of executions per service and status, every row counted once.
    pub async fn execution_counts(&self) -> Result<Vec<StatusCount>, Error> {
        let mut connection = self.connection().await?;
        let counts = diesel::sql_query(
            "SELECT service, status, count(*) AS count FROM executions
             GROUP BY service, status ORDER BY service, status",
        )
        .load(&mut connection)
        .await?;
        Ok(counts)
    }

    /// Cancels an execution that has not finished: it is never attempted again,
    /// and the result of an attempt running now is not recorded. `reason` is
    /// kept as the execution's error. Canceling a canceled execution changes
    /// nothing and succeeds.
    pub async fn cancel_execution(
        &self,
        id: Uuid,
        reason: Option<&str>,
    ) -> Result<CancelOutcome, Error> {
        let mut connection = self.connection().await?;
        // The sub-select locks the row and reads its status before the update,
        // so one statement both guards the change and says what it changed.
        let previous: Option<PreviousStatus> = diesel::sql_query(
            "UPDATE executions e
             SET status = 'canceled',
                 finished_at = CASE WHEN p.status = 'canceled' THEN e.finished_at ELSE now() END,
                 error = CASE WHEN p.status = 'canceled' THEN e.error
                         ELSE jsonb_build_object('class', 'canceled', 'code', 'canceled',
                                                 'message', COALESCE($2, 'canceled by request'))
                         END,
                 next_attempt_at = NULL, locked_by = NULL, lease_until = NULL,
                 updated_at = CASE WHEN p.status = 'canceled' THEN e.updated_at ELSE now() END
             FROM (SELECT id, status FROM executions WHERE id = $1 FOR UPDATE) p
             WHERE e.id = p.id AND p.status IN ('queued', 'retry', 'running', 'canceled')
             RETURNING p.status AS previous",
        )
        .bind::<SqlUuid, _>(id)
        .bind::<Nullable<Text>, _>(reason)
        .get_result(&mut connection)
        .await
        .optional()?;
        drop(connection);

        match previous {
            Some(previous) => {
                let was = parse_status(&previous.previous);
                match self.execution(id).await? {
                    Some(row) => Ok(CancelOutcome::Canceled {
                        row: Box::new(row),
                        was,
                    }),
                    None => Ok(CancelOutcome::NotFound),
                }
            }
            None => match self.execution(id).await? {
                None => Ok(CancelOutcome::NotFound),
                Some(row) => Ok(CancelOutcome::Finished(row.status())),
            },
        }
    }

    /// Schedules a new attempt of a `failed` or `canceled` execution, due now.
    /// The attempt counter keeps counting. The caller enqueues the job; should
    /// that fail, the scheduler's sweep finds the due retry in PostgreSQL.
    pub async fn retry_execution(&self, id: Uuid) -> Result<RetryOutcome, Error> {
        let mut connection = self.connection().await?;
        let changed: Option<ExecutionRow> =
            diesel::update(executions::table.filter(executions::id.eq(id)).filter(
                executions::status.eq_any([
                    ExecutionStatus::Failed.as_str(),
                    ExecutionStatus::Canceled.as_str(),
                ]),
            ))
            .set((
                executions::status.eq(ExecutionStatus::Retry.as_str()),
                executions::next_attempt_at.eq(diesel::dsl::now),
                executions::finished_at.eq(None::<DateTime<Utc>>),
                executions::locked_by.eq(None::<String>),
                executions::lease_until.eq(None::<DateTime<Utc>>),
                executions::updated_at.eq(diesel::dsl::now),
            ))
            .returning(ExecutionRow::as_returning())
            .get_result(&mut connection)
            .await
            .optional()?;
        drop(connection);

        match changed {
            Some(row) => Ok(RetryOutcome::Scheduled(Box::new(row))),
            None => match self.execution(id).await? {
                None => Ok(RetryOutcome::NotFound),
                Some(row) => Ok(RetryOutcome::NotRetryable(row.status())),
            },
        }
    }
}

fn parse_status(name: &str) -> ExecutionStatus {
    name.parse()
        .expect("the status column is CHECK-constrained to known names")
}
