//! Queries of the fan-out stage: which reactions an event triggers, and the batch
//! insert of their execution rows.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Int8, Jsonb, Nullable, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use serde_json::Value;
use uuid::Uuid;

use crate::error::Error;
use crate::models::ExecutionStatus;
use crate::pool::Store;
use crate::prepared::{bind, prepared};

/// What an AREA asks for when one of its events arrives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AreaPlan {
    /// Whether the AREA itself is enabled.
    pub enabled: bool,
    /// Its enabled reactions, in `position` order.
    pub reactions: Vec<PlannedReaction>,
}

/// One enabled reaction of an AREA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedReaction {
    /// The reaction's id.
    pub id: Uuid,
    /// The service whose job stream runs it.
    pub service: String,
    /// Its configuration.
    pub config: Value,
}

/// An execution row to create.
#[derive(Clone, Debug)]
pub struct NewExecution {
    /// The new row's id.
    pub id: Uuid,
    /// The event's AREA.
    pub area_id: Uuid,
    /// The reaction to run.
    pub reaction_id: Uuid,
    /// The event's id.
    pub event_id: String,
    /// The reaction's service.
    pub service: String,
    /// The event as JSON.
    pub input_payload: Value,
    /// The event's correlation id.
    pub correlation_id: Option<Uuid>,
    /// `event_id:reaction_id`: one row per pair, however often the event arrives.
    pub dedup_key: String,
}

impl NewExecution {
    /// The dedup key of an (event, reaction) pair.
    pub fn dedup_key(event_id: &str, reaction_id: Uuid) -> String {
        format!("{event_id}:{reaction_id}")
    }
}

/// An execution row after the insert: new, or found from an earlier delivery.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct QueuedExecution {
    /// The row's id.
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    /// The reaction's service.
    #[diesel(sql_type = Text)]
    pub service: String,
    /// The row's status; only `queued` rows need a job.
    #[diesel(sql_type = Text)]
    pub status: String,
    /// The row's dedup key.
    #[diesel(sql_type = Text)]
    pub dedup_key: String,
}

impl QueuedExecution {
    /// Whether the row still waits for its first attempt, or may be running
    /// under a lease that nothing else answers for (a worker that ran it
    /// straight from the event and stopped), so a job must exist. The job's
    /// claim leaves a live lease alone and takes an expired one over.
    pub fn needs_job(&self) -> bool {
        self.status == ExecutionStatus::Queued.as_str()
            || self.status == ExecutionStatus::Running.as_str()
    }

    /// Whether the row is running an attempt.
    pub fn is_running(&self) -> bool {
        self.status == ExecutionStatus::Running.as_str()
    }
}

#[derive(QueryableByName)]
struct PlanRow {
    #[diesel(sql_type = SqlUuid)]
    area_id: Uuid,
    #[diesel(sql_type = Bool)]
    area_enabled: bool,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    reaction_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    service: Option<String>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    config: Option<Value>,
}

impl Store {
    /// The plans of the given AREAs. An AREA missing from the map does not exist.
    pub async fn area_plans(&self, area_ids: &[Uuid]) -> Result<HashMap<Uuid, AreaPlan>, Error> {
        if area_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut connection = self.connection().await?;
        let rows: Vec<PlanRow> = prepared(
            "SELECT a.id AS area_id, a.enabled AS area_enabled, r.id AS reaction_id, r.service,
                    r.config
             FROM areas a
             LEFT JOIN reactions r ON r.area_id = a.id AND r.enabled
             WHERE a.id = ANY($1)
             ORDER BY a.id, r.position, r.id",
            (bind::<Array<SqlUuid>, _>(area_ids),),
        )
        .load(&mut connection)
        .await?;

        let mut plans: HashMap<Uuid, AreaPlan> = HashMap::with_capacity(area_ids.len());
        for row in rows {
            let plan = plans.entry(row.area_id).or_default();
            plan.enabled = row.area_enabled;
            if let (Some(id), Some(service)) = (row.reaction_id, row.service) {
                plan.reactions.push(PlannedReaction {
                    id,
                    service,
                    config: row.config.unwrap_or(Value::Null),
                });
            }
        }
        Ok(plans)
    }

    /// Inserts the rows in one statement, skipping pairs that already have a row,
    /// and returns every row of the batch: the new ones and those found.
    ///
    /// Rows found rather than inserted (a redelivered event) are read by a
    /// second statement, only when there are some: the common batch of new
    /// events pays for no lookup by dedup key beyond the unique index's own.
    pub async fn insert_executions(
        &self,
        rows: &[NewExecution],
    ) -> Result<Vec<QueuedExecution>, Error> {
        self.insert_executions_running(rows, &vec![false; rows.len()], "", Duration::ZERO)
            .await
    }

    /// [`Self::insert_executions`], except that each new row whose `here` flag
    /// is set starts `running` its first attempt under `worker`'s lease, as
    /// if claimed in the same statement: the fan-out runs it without a job.
    /// Rows found rather than inserted keep their state.
    pub async fn insert_executions_running(
        &self,
        rows: &[NewExecution],
        here: &[bool],
        worker: &str,
        lease: Duration,
    ) -> Result<Vec<QueuedExecution>, Error> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        assert_eq!(rows.len(), here.len(), "one flag per row");
        let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
        let area_ids: Vec<Uuid> = rows.iter().map(|row| row.area_id).collect();
        let reaction_ids: Vec<Uuid> = rows.iter().map(|row| row.reaction_id).collect();
        let event_ids: Vec<&str> = rows.iter().map(|row| row.event_id.as_str()).collect();
        let services: Vec<&str> = rows.iter().map(|row| row.service.as_str()).collect();
        let payloads: Vec<&Value> = rows.iter().map(|row| &row.input_payload).collect();
        let correlation_ids: Vec<Option<Uuid>> =
            rows.iter().map(|row| row.correlation_id).collect();
        let dedup_keys: Vec<&str> = rows.iter().map(|row| row.dedup_key.as_str()).collect();

        let mut connection = self.connection().await?;
        let mut found: Vec<QueuedExecution> = prepared(
            // A row run here gets what the claim of a queued row writes
            // (status, attempt, started_at, lease), so the record that follows
            // and a takeover after a crash see the same row either way.
            "INSERT INTO executions (id, area_id, reaction_id, event_id, service,
                                     input_payload, correlation_id, dedup_key,
                                     status, attempt, started_at, locked_by, lease_until)
             SELECT u.id, u.area_id, u.reaction_id, u.event_id, u.service,
                    u.input_payload, u.correlation_id, u.dedup_key,
                    CASE WHEN u.here THEN 'running' ELSE 'queued' END,
                    CASE WHEN u.here THEN 1 ELSE 0 END,
                    CASE WHEN u.here THEN now() END,
                    CASE WHEN u.here THEN $1 END,
                    CASE WHEN u.here THEN now() + $2 * interval '1 millisecond' END
             FROM unnest($3::uuid[], $4::uuid[], $5::uuid[], $6::text[],
                         $7::text[], $8::jsonb[], $9::uuid[], $10::text[], $11::bool[])
                  AS u(id, area_id, reaction_id, event_id, service,
                       input_payload, correlation_id, dedup_key, here)
             ON CONFLICT (dedup_key) DO NOTHING
             RETURNING id, service, status, dedup_key",
            (
                bind::<Text, _>(worker),
                bind::<Int8, _>(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)),
                bind::<Array<SqlUuid>, _>(&ids),
                bind::<Array<SqlUuid>, _>(&area_ids),
                bind::<Array<SqlUuid>, _>(&reaction_ids),
                bind::<Array<Text>, _>(&event_ids),
                bind::<Array<Text>, _>(&services),
                bind::<Array<Jsonb>, _>(&payloads),
                bind::<Array<Nullable<SqlUuid>>, _>(&correlation_ids),
                bind::<Array<Text>, _>(&dedup_keys),
                bind::<Array<Bool>, _>(here),
            ),
        )
        .load(&mut connection)
        .await?;
        if found.len() == rows.len() {
            return Ok(found);
        }

        // Pairs that already had a row (or appear twice in the batch, whose
        // second copy the insert skipped and whose row is already in `found`).
        let inserted: HashSet<&str> = found.iter().map(|row| row.dedup_key.as_str()).collect();
        let mut missing: Vec<&str> = dedup_keys
            .iter()
            .copied()
            .filter(|key| !inserted.contains(key))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(found);
        }
        let existing: Vec<QueuedExecution> = diesel::sql_query(
            "SELECT id, service, status, dedup_key FROM executions WHERE dedup_key = ANY($1)",
        )
        .bind::<Array<Text>, _>(&missing)
        .load(&mut connection)
        .await?;
        found.extend(existing);
        Ok(found)
    }
}
