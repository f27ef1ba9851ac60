//! Fan-out: events in, execution rows and jobs out.
//!
//! For each batch of events: decode them (invalid ones are dead-lettered with
//! the reason and acknowledged), look up the enabled reactions of their AREAs in
//! one query, insert one `queued` row per (event, reaction) in one statement,
//! publish one job per row still `queued`, and only then acknowledge the events.
//! A crash anywhere before the ack leaves the events pending; delivered again,
//! they find their rows by dedup key and publish the jobs that may be missing,
//! so nothing is lost and no row is duplicated.
//!
//! A row for a service this process serves skips its job when the service has
//! a free permit: the insert writes it already `running` under this worker's
//! lease, as the executor's claim would, and the fan-out starts its attempt on
//! the service's lane. Its event is
//! then acknowledged only once all such attempts are recorded, so the event's
//! pending entry answers for them as a job's would: should this worker stop,
//! the event is claimed again and publishes jobs for its rows not settled,
//! whose claim takes an expired lease over.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use area_core::{Event, EventError};
use area_store::{AreaPlan, ClaimedExecution, NewExecution, QueuedExecution};
use area_stream::{DeadLetterReason, EVENT_FIELD, Entry, Job};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Shared;
use super::backoff::{Abandoned, until_ok};
use super::executor::Lane;
use super::lease::{EventTicket, Origin};
use super::reader::{ReadLoop, reader_loop};
use super::sanitize::sanitize_event;
use crate::reactions::WORKSPACE_SERVICES;

/// Batches of events processed at once. The second one's read, plan and
/// insert overlap the first one's: an event no longer waits for the whole
/// batch ahead of it, and PostgreSQL gets both cores.
const BATCHES_IN_FLIGHT: usize = 2;

/// How long one batch may wait, in all, for permits of full lanes before
/// its remaining rows go through their job streams.
const DIRECT_PERMIT_WAIT: Duration = Duration::from_millis(25);

/// Runs the fan-out reader until shutdown, then lets the attempts it started
/// finish until the hard stop.
pub(crate) async fn run(shared: Arc<Shared>, lanes: Vec<Lane>, shutdown: CancellationToken) {
    let stream = shared.redis.keys().events();
    let handler = FanOut {
        stage: Arc::new(Stage {
            shared: shared.clone(),
            stream: stream.clone(),
            unknown_services: Mutex::new(HashSet::new()),
            lanes,
            attempts: Mutex::new(JoinSet::new()),
        }),
        batches: JoinSet::new(),
    };
    let mut handler = reader_loop(shared.clone(), stream, shutdown, handler).await;
    // Batches still in flight may start attempts: let them finish first.
    while handler.batches.join_next().await.is_some() {}
    let mut attempts = std::mem::take(&mut *handler.stage.lock_attempts());
    tokio::select! {
        () = async { while attempts.join_next().await.is_some() {} } => {}
        () = shared.hard_stop.cancelled() => attempts.abort_all(),
    }
    // Dropping the lanes lets the recorders end.
    drop(handler);
    tracing::debug!("fan-out stopped");
}

/// The reader's side: batches in flight.
struct FanOut {
    stage: Arc<Stage>,
    batches: JoinSet<()>,
}

/// What every batch works with.
struct Stage {
    shared: Arc<Shared>,
    stream: String,
    /// Services named by reactions that no reaction crate of the workspace
    /// provides, each already reported once.
    unknown_services: Mutex<HashSet<String>>,
    /// The lanes of the services whose new executions run here directly;
    /// empty when direct runs are off.
    lanes: Vec<Lane>,
    /// Attempts started directly.
    attempts: Mutex<JoinSet<()>>,
}

/// An event that passed decoding, with the entry it came from.
struct Decoded {
    entry: Entry,
    event: Event,
}

/// The rows to insert for a batch and the events they came from.
struct Planned {
    rows: Vec<NewExecution>,
    /// For each row, its event's index in `ack_ids`.
    row_event: Vec<usize>,
    /// For each row, whether it runs here, with what its attempt needs.
    direct: Vec<Option<Direct>>,
    /// The entries to acknowledge once their rows are handled.
    ack_ids: Vec<String>,
}

/// A new row to run here: its lane, the permit the lane gave it, and its
/// reaction's configuration.
struct Direct {
    lane: usize,
    permit: OwnedSemaphorePermit,
    config: serde_json::Value,
}

/// A row inserted `running`, ready for its attempt.
struct Started {
    event: usize,
    lane: usize,
    permit: OwnedSemaphorePermit,
    execution: ClaimedExecution,
}

impl ReadLoop for FanOut {
    async fn reserve(&mut self) -> usize {
        while self.batches.try_join_next().is_some() {}
        while self.batches.len() >= BATCHES_IN_FLIGHT {
            self.batches.join_next().await;
        }
        // Reap finished attempt tasks so the set does not grow.
        let mut attempts = self.stage.lock_attempts();
        while attempts.try_join_next().is_some() {}
        drop(attempts);
        self.stage.shared.settings.batch_size
    }

    async fn handle(&mut self, entries: Vec<Entry>) {
        let stage = self.stage.clone();
        self.batches
            .spawn(async move { stage.process(entries).await });
    }
}

impl Stage {
    fn lock_attempts(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        self.attempts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn process(&self, entries: Vec<Entry>) {
        metrics::counter!("area_events_read_total").increment(entries.len() as u64);
        let mut decoded = Vec::with_capacity(entries.len());
        for entry in entries {
            match self.decode(&entry) {
                Ok(event) => decoded.push(Decoded { entry, event }),
                Err(reason) => {
                    if !self.dead_letter(&entry, reason).await {
                        return;
                    }
                }
            }
        }
        if decoded.is_empty() {
            return;
        }

        let Some(planned) = self.plan(&decoded).await else {
            return;
        };
        let Some(inserted) = self.insert(&planned).await else {
            return;
        };
        let (jobs, started, ack_ids) = split(planned, inserted);
        let enqueued = until_ok(
            "enqueue jobs",
            &self.shared.hard_stop,
            area_stream::Error::is_connection,
            || self.shared.redis.enqueue_jobs(&jobs),
        )
        .await;
        if let Err(error) = enqueued {
            log_abandoned("enqueue jobs", &error);
            return;
        }

        let ack_ids = self.start_direct(ack_ids, started);
        let acked = until_ok(
            "ack events",
            &self.shared.hard_stop,
            area_stream::Error::is_connection,
            || self.shared.redis.ack(&self.stream, &ack_ids),
        )
        .await;
        if let Err(error) = acked {
            log_abandoned("ack events", &error);
        }
        self.shared.state.record_progress(&self.stream);
    }

    /// Starts the attempts of the rows inserted `running`; returns the entries
    /// to acknowledge now, those with no attempt started here.
    fn start_direct(&self, ack_ids: Vec<String>, started: Vec<Started>) -> Vec<String> {
        if started.is_empty() {
            return ack_ids;
        }
        let mut counts = vec![0usize; ack_ids.len()];
        for run in &started {
            counts[run.event] += 1;
        }
        let mut tickets: Vec<Option<Arc<EventTicket>>> = vec![None; ack_ids.len()];
        let mut ack_now = Vec::with_capacity(ack_ids.len());
        for (index, entry_id) in ack_ids.into_iter().enumerate() {
            if counts[index] == 0 {
                ack_now.push(entry_id);
            } else {
                tickets[index] = Some(EventTicket::new(entry_id, counts[index]));
            }
        }
        metrics::counter!("area_direct_runs_total").increment(started.len() as u64);
        let mut attempts = self.lock_attempts();
        for run in started {
            let ticket = tickets[run.event]
                .clone()
                .expect("a ticket exists for every event with a direct run");
            self.lanes[run.lane].start(
                &self.shared,
                &mut attempts,
                run.execution,
                Origin::Event(ticket),
                run.permit,
            );
        }
        ack_now
    }

    /// Whether a new row of `service` runs here: its lane and a permit of it.
    ///
    /// A full lane is waited for until `deadline`, the batch's one allowance:
    /// at full speed its permits come back with the recorder's next commit,
    /// within milliseconds, and a row that gives up on them costs a job
    /// round trip and a claim instead. Waiting in the semaphore's queue also
    /// puts the fan-out ahead of the executor, which only takes permits that
    /// are free, so the job path stays the overflow it is meant to be. Past
    /// the deadline (a lane full of slow attempts), rows go to the job
    /// stream at once.
    ///
    /// Only a batch's share of a lane (its concurrency over the batches in
    /// flight) may wait: rows past it, as when every event has five
    /// reactions, could not all run at once anyway, and waiting for them
    /// would only stall the batch.
    async fn direct(
        &self,
        service: &str,
        deadline: tokio::time::Instant,
        rows_per_lane: &mut [usize],
    ) -> Option<(usize, OwnedSemaphorePermit)> {
        let lane = self.lanes.iter().position(|lane| lane.service == service)?;
        let permits = &self.lanes[lane].permits;
        rows_per_lane[lane] += 1;
        if let Ok(permit) = permits.clone().try_acquire_owned() {
            return Some((lane, permit));
        }
        if rows_per_lane[lane] > self.shared.settings.concurrency / BATCHES_IN_FLIGHT {
            return None;
        }
        let waited = tokio::time::timeout_at(deadline, permits.clone().acquire_owned()).await;
        match waited {
            Ok(Ok(permit)) => Some((lane, permit)),
            _ => None,
        }
    }

    fn decode(&self, entry: &Entry) -> Result<Event, DeadLetterReason> {
        if let Some(count) = entry.delivery_count
            && count > self.shared.settings.max_deliveries
        {
            return Err(DeadLetterReason::new(
                "poison",
                format!("delivered {count} times without being processed"),
            ));
        }
        let raw = entry
            .field(EVENT_FIELD)
            .ok_or_else(|| reason(&EventError::MissingEventField))?;
        let mut event = Event::decode(raw, &entry.id, self.shared.settings.decode_limits)
            .map_err(|error| reason(&error))?;
        sanitize_event(&mut event);
        Ok(event)
    }

    /// Looks the AREAs up; returns the rows to insert and the entries to ack.
    /// Events of unknown AREAs are dead-lettered here.
    async fn plan(&self, decoded: &[Decoded]) -> Option<Planned> {
        let area_ids: Vec<Uuid> = decoded
            .iter()
            .map(|item| item.event.area_id.0)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let plans = until_ok(
            "look up areas",
            &self.shared.hard_stop,
            area_store::Error::is_transient,
            || self.shared.store.area_plans(&area_ids),
        )
        .await;
        let plans = match plans {
            Ok(plans) => plans,
            Err(error) => {
                log_abandoned("look up areas", &error);
                return None;
            }
        };

        self.report_unknown_services(&plans);

        let permit_deadline = tokio::time::Instant::now() + DIRECT_PERMIT_WAIT;
        let mut rows_per_lane = vec![0; self.lanes.len()];
        let mut rows = Vec::with_capacity(decoded.len());
        let mut row_event = Vec::with_capacity(decoded.len());
        let mut direct = Vec::with_capacity(decoded.len());
        let mut ack_ids = Vec::with_capacity(decoded.len());
        for item in decoded {
            let Some(plan) = plans.get(&item.event.area_id.0) else {
                let reason = DeadLetterReason::new(
                    "unknown_area",
                    format!("no AREA with id {}", item.event.area_id),
                );
                if !self.dead_letter(&item.entry, reason).await {
                    return None;
                }
                continue;
            };
            let event = ack_ids.len();
            ack_ids.push(item.entry.id.clone());
            if !plan.enabled {
                tracing::debug!(event_id = %item.event.id, area_id = %item.event.area_id, "area disabled");
                continue;
            }
            let input_payload = item.event.to_json();
            for reaction in &plan.reactions {
                rows.push(NewExecution {
                    id: Uuid::now_v7(),
                    area_id: item.event.area_id.0,
                    reaction_id: reaction.id,
                    event_id: item.event.id.0.clone(),
                    service: reaction.service.clone(),
                    input_payload: input_payload.clone(),
                    correlation_id: item.event.correlation_id,
                    dedup_key: NewExecution::dedup_key(&item.event.id.0, reaction.id),
                });
                row_event.push(event);
                let run = self
                    .direct(&reaction.service, permit_deadline, &mut rows_per_lane)
                    .await;
                direct.push(run.map(|(lane, permit)| Direct {
                    lane,
                    permit,
                    config: reaction.config.clone(),
                }));
            }
        }
        Some(Planned {
            rows,
            row_event,
            direct,
            ack_ids,
        })
    }

    /// Says once per service when a reaction names a service that no reaction
    /// crate of this workspace provides: most likely a typo (`webhok`), whose
    /// executions would otherwise wait in their stream without a word. A
    /// known service that this binary does not serve is left to other
    /// workers, as designed, and not reported.
    fn report_unknown_services(&self, plans: &HashMap<Uuid, AreaPlan>) {
        for (area_id, plan) in plans {
            for reaction in &plan.reactions {
                if WORKSPACE_SERVICES.contains(&reaction.service.as_str()) {
                    continue;
                }
                let mut reported = self
                    .unknown_services
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if reported.insert(reaction.service.clone()) {
                    tracing::warn!(
                        service = %reaction.service,
                        reaction_id = %reaction.id,
                        area_id = %area_id,
                        stream = %self.shared.redis.keys().jobs(&reaction.service),
                        "a reaction names a service that no reaction crate of this workspace \
                         provides (misspelt?); its executions wait in their job stream for a \
                         worker that serves it"
                    );
                }
            }
        }
    }

    /// Inserts the rows, those to run here already `running`; returns every
    /// row of the batch, new or found.
    async fn insert(&self, planned: &Planned) -> Option<Vec<QueuedExecution>> {
        let here: Vec<bool> = planned.direct.iter().map(Option::is_some).collect();
        let settings = &self.shared.settings;
        let inserted = until_ok(
            "insert executions",
            &self.shared.hard_stop,
            area_store::Error::is_transient,
            || {
                self.shared.store.insert_executions_running(
                    &planned.rows,
                    &here,
                    &settings.worker,
                    settings.lease,
                )
            },
        )
        .await;
        match inserted {
            Ok(rows) => Some(rows),
            Err(error) => {
                log_abandoned("insert executions", &error);
                None
            }
        }
    }

    /// Dead-letters an entry; false when the engine is stopping and it could not.
    async fn dead_letter(&self, entry: &Entry, reason: DeadLetterReason) -> bool {
        tracing::warn!(entry_id = %entry.id, code = %reason.code, reason = %reason.message, "event dead-lettered");
        metrics::counter!("area_dead_letters_total", "code" => reason.code.clone()).increment(1);
        let result = until_ok(
            "dead-letter",
            &self.shared.hard_stop,
            area_stream::Error::is_connection,
            || self.shared.redis.dead_letter(&self.stream, entry, &reason),
        )
        .await;
        match result {
            Ok(_) => true,
            Err(error) => {
                log_abandoned("dead-letter", &error);
                false
            }
        }
    }
}

/// Sorts the rows of a batch after the insert: new rows inserted `running`
/// start here; other rows that need an attempt (queued, or running under a
/// lease nothing else may answer for) get a job. Permits of rows that turned
/// out not to be new are given back.
fn split(
    planned: Planned,
    inserted: Vec<QueuedExecution>,
) -> (Vec<Job>, Vec<Started>, Vec<String>) {
    let Planned {
        rows,
        row_event,
        direct,
        ack_ids,
    } = planned;
    let mut jobs = Vec::new();
    let mut started = Vec::new();
    // Ids this batch generated: a row returned with one was inserted now.
    let new_rows: HashMap<Uuid, usize> = rows
        .iter()
        .enumerate()
        .map(|(index, row)| (row.id, index))
        .collect();
    let mut rows: Vec<Option<NewExecution>> = rows.into_iter().map(Some).collect();
    let mut direct = direct;
    for found in inserted {
        let new = new_rows.get(&found.id).copied();
        if let Some(index) = new
            && found.is_running()
            && let (Some(row), Some(run)) = (rows[index].take(), direct[index].take())
        {
            started.push(Started {
                event: row_event[index],
                lane: run.lane,
                permit: run.permit,
                execution: ClaimedExecution {
                    id: row.id,
                    area_id: row.area_id,
                    reaction_id: row.reaction_id,
                    event_id: row.event_id,
                    service: row.service,
                    attempt: 1,
                    input_payload: row.input_payload,
                    dedup_key: row.dedup_key,
                    config: Some(run.config),
                    in_doubt: false,
                },
            });
        } else if found.needs_job() {
            jobs.push(job(found));
        }
    }
    (jobs, started, ack_ids)
}

fn job(row: QueuedExecution) -> Job {
    Job {
        service: row.service,
        execution_id: row.id,
    }
}

fn reason(error: &EventError) -> DeadLetterReason {
    DeadLetterReason::new(error.code(), error.to_string())
}

fn log_abandoned<E: std::fmt::Display>(what: &str, error: &Abandoned<E>) {
    match error {
        Abandoned::Permanent(error) => {
            tracing::error!(operation = what, error = %error, "failed; entries stay pending");
        }
        Abandoned::Stopped => tracing::debug!(operation = what, "abandoned at the drain deadline"),
    }
}
