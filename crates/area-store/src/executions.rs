//! Queries of the execute stage: claiming executions for an attempt, recording
//! the outcomes of attempts, and finding executions that Redis lost track of.
//!
//! Claiming is the compare-and-set that makes a job delivered twice run once: a
//! row moves to `running` only from `queued`, from a due `retry`, or from a
//! `running` whose lease has expired (its worker died). Recording is guarded by
//! the lease holder and the attempt number, so a result that arrives after the
//! row was canceled or taken over changes nothing.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{Array, Int4, Int8, Jsonb, Nullable, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use serde_json::Value;
use uuid::Uuid;

use crate::error::Error;
use crate::models::{ExecutionRow, ExecutionStatus};
use crate::pool::Store;
use crate::prepared::{bind, prepared};
use crate::schema::executions;

/// An execution this worker now holds the lease of, with what its attempt needs.
#[derive(Clone, Debug, QueryableByName)]
pub struct ClaimedExecution {
    /// The execution.
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    /// Its AREA.
    #[diesel(sql_type = SqlUuid)]
    pub area_id: Uuid,
    /// Its reaction.
    #[diesel(sql_type = SqlUuid)]
    pub reaction_id: Uuid,
    /// The event's id.
    #[diesel(sql_type = Text)]
    pub event_id: String,
    /// The reaction's service.
    #[diesel(sql_type = Text)]
    pub service: String,
    /// The number of the attempt now starting, from 1.
    #[diesel(sql_type = Int4)]
    pub attempt: i32,
    /// The event as JSON.
    #[diesel(sql_type = Jsonb)]
    pub input_payload: Value,
    /// The idempotency key.
    #[diesel(sql_type = Text)]
    pub dedup_key: String,
    /// The reaction's configuration now; `None` when the reaction was deleted.
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub config: Option<Value>,
    /// The previous attempt's worker died mid-attempt: whether it reached the
    /// service is unknown.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub in_doubt: bool,
}

/// The status an attempt's outcome moves its execution to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordedStatus {
    /// Delivered.
    Ok,
    /// Failed; retry after the delay.
    Retry {
        /// Time until the next attempt is due.
        delay: Duration,
    },
    /// Failed for good.
    Failed,
}

/// The outcome of one attempt, to be recorded.
#[derive(Clone, Debug)]
pub struct AttemptRecord {
    /// The execution.
    pub id: Uuid,
    /// The attempt's number, as claimed.
    pub attempt: i32,
    /// Where the execution goes.
    pub status: RecordedStatus,
    /// The service's answer, for `Ok`.
    pub output: Option<Value>,
    /// The error, for `Retry` and `Failed`.
    pub error: Option<Value>,
}

/// An execution that is not settled, and when a job for it is due.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct UnsettledExecution {
    /// The execution.
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    /// Its service, which names the job stream.
    #[diesel(sql_type = Text)]
    pub service: String,
    /// `queued`, `retry` or `running`.
    #[diesel(sql_type = Text)]
    pub status: String,
    /// When a job may run it, in milliseconds since the Unix epoch: now for a
    /// queued row, its due time for a retry, its lease's end for a running row
    /// (a claim before then would find the lease alive and do nothing).
    #[diesel(sql_type = Int8)]
    pub due_at_ms: i64,
    /// A running row whose lease has not ended: its worker may be alive.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub lease_alive: bool,
}

/// A retry whose schedule entry Redis may have lost.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct StaleExecution {
    /// The execution.
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    /// Its service, which names the job stream.
    #[diesel(sql_type = Text)]
    pub service: String,
}

impl Store {
    /// Moves the claimable executions among `ids` to `running` under this worker's
    /// lease, in one statement, and returns them with their reaction config.
    /// Executions not returned are not this worker's to run (done, canceled, not
    /// yet due, or running under a live lease elsewhere).
    pub async fn claim_executions(
        &self,
        ids: &[Uuid],
        worker: &str,
        lease: Duration,
    ) -> Result<Vec<ClaimedExecution>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.connection().await?;
        // One update finds the rows by primary key and tests their status, with
        // no lock taken before it (a `SELECT ... FOR UPDATE` there cost a lock
        // record in the WAL and about a third of the claim's work per row).
        // When another worker's claim, record or cancel changed a row first,
        // the update waits for it to commit and tests its conditions again on
        // the new version (read committed): a row claimed elsewhere meanwhile
        // has a live lease or another status, and is left alone. Deadlocks
        // with another statement are transient and retried.
        //
        // A row taken over from an expired lease gets an `unknown` entry in its
        // attempt log: that attempt may or may not have reached the service.
        // Its `error` says so too, which also lists it among the troubled rows.
        // In `SET`, `e.status` is the status before this update; `RETURNING`
        // sees the row after it, so `in_doubt` is read from what the takeover
        // wrote: only a takeover appends an `unknown` entry, and it numbers
        // that entry one less than the attempt it starts.
        //
        // The happy path (a queued row's first claim) writes no indexed column:
        // `next_attempt_at` and `error` are NULL before and after, so the
        // update is HOT (see the `hot_updates` migration).
        //
        // The status test is a CASE so that it cannot use an index: written as
        // `status = 'queued' OR ...`, the planner (on a table never analyzed, as
        // a busy one is between autovacuums) ANDs the primary key lookup with a
        // bitmap of every queued row, dead versions included, and each claim
        // then costs as much as the backlog. The ids alone find the rows.
        let claimed = prepared(
            "WITH claimed AS (
                 UPDATE executions e
                 SET status = 'running', attempt = e.attempt + 1, started_at = now(),
                     locked_by = $1, lease_until = now() + $2 * interval '1 millisecond',
                     next_attempt_at = NULL, updated_at = now(),
                     attempts = CASE WHEN e.status = 'running'
                         THEN e.attempts || jsonb_build_array(jsonb_build_object(
                             'attempt', e.attempt, 'status', 'unknown',
                             'started_at', e.started_at, 'finished_at', now(),
                             'error', l.error))
                         ELSE e.attempts END,
                     error = CASE WHEN e.status = 'running' THEN l.error ELSE e.error END
                 FROM (SELECT jsonb_build_object(
                     'class', 'retryable', 'code', 'lease_expired',
                     'message', 'the worker running this attempt stopped before recording it; it may have reached the service',
                     'possible_duplicate', true) AS error) l
                 WHERE e.id = ANY($3)
                   AND CASE e.status
                           WHEN 'queued' THEN true
                           WHEN 'retry' THEN e.next_attempt_at <= now()
                           WHEN 'running' THEN e.lease_until < now()
                           ELSE false
                       END
                 RETURNING e.id, e.area_id, e.reaction_id, e.event_id, e.service, e.attempt,
                           e.input_payload, e.dedup_key,
                           COALESCE(e.attempts -> -1 ->> 'status' = 'unknown'
                                    AND (e.attempts -> -1 ->> 'attempt')::int4 = e.attempt - 1,
                                    false) AS in_doubt
             )
             SELECT c.*, r.config FROM claimed c LEFT JOIN reactions r ON r.id = c.reaction_id",
            (
                bind::<Text, _>(worker),
                bind::<Int8, _>(duration_millis(lease)),
                bind::<Array<SqlUuid>, _>(ids),
            ),
        )
        .load(&mut connection)
        .await?;
        Ok(claimed)
    }

    /// Records attempt outcomes in one statement. Returns the ids whose row was
    /// still this worker's running attempt and so changed; the others were
    /// canceled or taken over meanwhile and keep their state.
    pub async fn record_attempts(
        &self,
        records: &[AttemptRecord],
        worker: &str,
    ) -> Result<Vec<Uuid>, Error> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = records.iter().map(|record| record.id).collect();
        let attempts: Vec<i32> = records.iter().map(|record| record.attempt).collect();
        let statuses: Vec<&str> = records
            .iter()
            .map(|record| status_name(record.status))
            .collect();
        let delays: Vec<Option<i64>> = records
            .iter()
            .map(|record| match record.status {
                RecordedStatus::Retry { delay } => Some(duration_millis(delay)),
                _ => None,
            })
            .collect();
        let outputs: Vec<Option<&Value>> = records
            .iter()
            .map(|record| record.output.as_ref())
            .collect();
        let errors: Vec<Option<&Value>> =
            records.iter().map(|record| record.error.as_ref()).collect();

        #[derive(QueryableByName)]
        struct Changed {
            #[diesel(sql_type = SqlUuid)]
            id: Uuid,
        }
        let mut connection = self.connection().await?;
        let changed: Vec<Changed> = prepared(
            "UPDATE executions e
             SET status = u.status,
                 finished_at = CASE WHEN u.status = 'retry' THEN NULL ELSE now() END,
                 next_attempt_at = now() + u.delay_ms * interval '1 millisecond',
                 output_payload = COALESCE(u.output, e.output_payload),
                 error = CASE WHEN u.status = 'ok' THEN NULL
                         ELSE COALESCE(u.error, jsonb_build_object(
                             'class', 'unknown', 'code', 'unknown',
                             'message', 'the attempt failed without saying why'))
                         END,
                 attempts = e.attempts || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
                     'attempt', e.attempt, 'status', u.status, 'started_at', e.started_at,
                     'finished_at', now(), 'output', u.output, 'error', u.error))),
                 locked_by = NULL, lease_until = NULL, updated_at = now()
             FROM unnest($1::uuid[], $2::int4[], $3::text[], $4::int8[], $5::jsonb[], $6::jsonb[])
                  AS u(id, attempt, status, delay_ms, output, error)
             WHERE e.id = u.id AND e.status = 'running' AND e.attempt = u.attempt
               AND e.locked_by = $7
             RETURNING e.id",
            (
                bind::<Array<SqlUuid>, _>(&ids),
                bind::<Array<Int4>, _>(&attempts),
                bind::<Array<Text>, _>(&statuses),
                bind::<Array<Nullable<Int8>>, _>(&delays),
                bind::<Array<Nullable<Jsonb>>, _>(&outputs),
                bind::<Array<Nullable<Jsonb>>, _>(&errors),
                bind::<Text, _>(worker),
            ),
        )
        .load(&mut connection)
        .await?;
        Ok(changed.into_iter().map(|row| row.id).collect())
    }

    /// Extends the leases this worker holds on `ids` to `lease` from now; returns
    /// how many it still held. A slow but healthy attempt keeps its execution.
    pub async fn extend_leases(
        &self,
        ids: &[Uuid],
        worker: &str,
        lease: Duration,
    ) -> Result<usize, Error> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut connection = self.connection().await?;
        let extended = prepared(
            // A CASE, as in the claim: the ids alone find the rows.
            "UPDATE executions SET lease_until = now() + $1 * interval '1 millisecond'
             WHERE id = ANY($2)
               AND CASE status WHEN 'running' THEN locked_by = $3 ELSE false END",
            (
                bind::<Int8, _>(duration_millis(lease)),
                bind::<Array<SqlUuid>, _>(ids),
                bind::<Text, _>(worker),
            ),
        )
        .execute(&mut connection)
        .await?;
        Ok(extended)
    }

    /// Retries due for longer than `grace`: the executions whose schedule
    /// entry Redis may have lost. Found through `next_attempt_at`'s index.
    pub async fn stale_retries(
        &self,
        grace: Duration,
        limit: i64,
    ) -> Result<Vec<StaleExecution>, Error> {
        let mut connection = self.connection().await?;
        let stale = prepared(
            "SELECT id, service FROM executions
             WHERE next_attempt_at < now() - $1 * interval '1 millisecond' AND status = 'retry'
             ORDER BY next_attempt_at LIMIT $2",
            (
                bind::<Int8, _>(duration_millis(grace)),
                bind::<Int8, _>(limit),
            ),
        )
        .load(&mut connection)
        .await?;
        Ok(stale)
    }

    /// Up to `limit` executions that are not settled (`queued`, `retry` or
    /// `running`), in id order after `after`, with when each should next be
    /// looked at. Rebuilding jobs after Redis lost data reads them all.
    ///
    /// No index serves the status test (the hot-path updates stay HOT that
    /// way): each call walks the primary key from `after`, so reading every
    /// page costs one pass over the table. It runs only when Redis lost data.
    pub async fn unsettled_executions(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<UnsettledExecution>, Error> {
        let mut connection = self.connection().await?;
        let rows = prepared(
            "SELECT id, service, status,
                    (extract(epoch FROM CASE status
                         WHEN 'queued' THEN now()
                         WHEN 'retry' THEN COALESCE(next_attempt_at, now())
                         ELSE GREATEST(COALESCE(lease_until, now()), now())
                     END) * 1000)::int8 AS due_at_ms,
                    status = 'running' AND lease_until >= now() AS lease_alive
             FROM executions
             WHERE id > $1 AND status IN ('queued', 'retry', 'running')
             ORDER BY id LIMIT $2",
            (
                bind::<SqlUuid, _>(after.unwrap_or(Uuid::nil())),
                bind::<Int8, _>(limit),
            ),
        )
        .load(&mut connection)
        .await?;
        Ok(rows)
    }

    /// One execution by id.
    pub async fn execution(&self, id: Uuid) -> Result<Option<ExecutionRow>, Error> {
        let mut connection = self.connection().await?;
        let row = executions::table
            .find(id)
            .select(ExecutionRow::as_select())
            .first(&mut connection)
            .await
            .optional()?;
        Ok(row)
    }

    /// Every execution of an event, oldest first.
    pub async fn executions_of_event(&self, event_id: &str) -> Result<Vec<ExecutionRow>, Error> {
        let mut connection = self.connection().await?;
        let rows = executions::table
            .filter(executions::event_id.eq(event_id))
            .order((executions::queued_at.asc(), executions::id.asc()))
            .select(ExecutionRow::as_select())
            .load(&mut connection)
            .await?;
        Ok(rows)
    }

    /// The oldest `limit` executions, oldest first.
    pub async fn oldest_executions(&self, limit: i64) -> Result<Vec<ExecutionRow>, Error> {
        let mut connection = self.connection().await?;
        let rows = executions::table
            .order((executions::queued_at.asc(), executions::id.asc()))
            .limit(limit)
            .select(ExecutionRow::as_select())
            .load(&mut connection)
            .await?;
        Ok(rows)
    }

    /// Number of executions per status.
    pub async fn count_by_status(&self) -> Result<Vec<(ExecutionStatus, i64)>, Error> {
        let mut connection = self.connection().await?;
        let rows: Vec<(String, i64)> = executions::table
            .group_by(executions::status)
            .select((executions::status, diesel::dsl::count_star()))
            .load(&mut connection)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(status, count)| status.parse().ok().map(|status| (status, count)))
            .collect())
    }
}

fn status_name(status: RecordedStatus) -> &'static str {
    match status {
        RecordedStatus::Ok => ExecutionStatus::Ok.as_str(),
        RecordedStatus::Retry { .. } => ExecutionStatus::Retry.as_str(),
        RecordedStatus::Failed => ExecutionStatus::Failed.as_str(),
    }
}

fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
