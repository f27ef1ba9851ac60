//! Execute: jobs in, attempts run, results handed to the recorder.
//!
//! The reader reserves semaphore permits before it reads, and reads at most as
//! many jobs as it holds permits: the bound on reactions in flight is also the
//! bound on jobs taken from Redis, so a backlog waits in the stream rather than
//! in memory. A permit travels with its attempt's result and is released only
//! after the recorder has stored it.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use area_store::{AttemptRecord, ClaimedExecution, RecordedStatus};
use area_stream::{DeadLetterReason, EXECUTION_FIELD, Entry};
use futures::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Shared;
use super::attempt;
use super::backoff::{Abandoned, until_ok};
use super::lease::{self, Held, Origin};
use super::reader::{ReadLoop, reader_loop};
use super::recorder::{self, Finished};

/// A service's lane: its bound on attempts in flight, the way to its recorder
/// and the attempts whose leases its keeper refreshes. The executor starts
/// attempts from jobs through it; the fan-out starts them directly, for rows it
/// has just inserted, when the lane has a free permit.
#[derive(Clone)]
pub(crate) struct Lane {
    pub service: &'static str,
    /// One permit per attempt in flight, held until its result is stored.
    pub permits: Arc<Semaphore>,
    /// Closing every sender (the executor's and the fan-out's) tells the
    /// recorder no more results come.
    pub results: mpsc::Sender<Finished>,
    /// Attempts whose lease the keeper refreshes until the recorder stores them.
    pub held: Held,
}

impl Lane {
    /// A lane for `service` and the receiving end of its results.
    pub(crate) fn new(
        service: &'static str,
        concurrency: usize,
    ) -> (Self, mpsc::Receiver<Finished>) {
        let (results, receiver) = mpsc::channel(concurrency);
        let lane = Self {
            service,
            permits: Arc::new(Semaphore::new(concurrency)),
            results,
            held: Held::default(),
        };
        (lane, receiver)
    }

    /// Runs a claimed execution's attempt in `attempts`; its result goes to the
    /// recorder with `origin`, the entry to acknowledge once it is stored.
    pub(crate) fn start(
        &self,
        shared: &Arc<Shared>,
        attempts: &mut JoinSet<()>,
        execution: ClaimedExecution,
        origin: Origin,
        permit: OwnedSemaphorePermit,
    ) {
        let shared = shared.clone();
        let results = self.results.clone();
        self.held.insert(execution.id, origin.clone());
        shared.state.attempt_started();
        attempts.spawn(async move {
            let started = Instant::now();
            let (id, number, service) = (execution.id, execution.attempt, execution.service.clone());
            // A reaction that panics fails its execution for good; left to
            // unwind, it would leave the execution `running` under a lease
            // the keeper renews forever, and its entry pending.
            let record = match AssertUnwindSafe(attempt::run(&shared, execution))
                .catch_unwind()
                .await
            {
                Ok(record) => record,
                Err(_) => {
                    tracing::error!(execution_id = %id, service = %service, "the reaction panicked; the execution is failed");
                    AttemptRecord {
                        id,
                        attempt: number,
                        status: RecordedStatus::Failed,
                        output: None,
                        error: Some(serde_json::json!({
                            "class": "permanent",
                            "code": "reaction_panicked",
                            "message": "the reaction panicked during the attempt; the worker's log has the details",
                        })),
                    }
                }
            };
            shared.state.attempt_finished();
            let finished = Finished {
                origin,
                record,
                started,
                _permit: permit,
            };
            // The recorder outlives every sender; a send can only fail at abort.
            let _ = results.send(finished).await;
        });
    }
}

/// Runs the reader, the attempts and the recorder of one service until shutdown
/// and drain.
pub(crate) async fn run(
    shared: Arc<Shared>,
    lane: Lane,
    receiver: mpsc::Receiver<Finished>,
    shutdown: CancellationToken,
) {
    let service = lane.service;
    let stream = shared.redis.keys().jobs(service);
    let recorder = tokio::spawn(recorder::run(
        shared.clone(),
        service,
        stream.clone(),
        receiver,
        lane.held.clone(),
    ));
    let keeper_stop = CancellationToken::new();
    let keeper = tokio::spawn(lease::keep(
        shared.clone(),
        stream.clone(),
        lane.held.clone(),
        keeper_stop.clone(),
    ));

    let executor = Executor {
        shared: shared.clone(),
        stream: stream.clone(),
        lane,
        reserved: Vec::new(),
        idle: true,
        attempts: JoinSet::new(),
    };
    let mut executor = reader_loop(shared.clone(), stream, shutdown, executor).await;

    // Drain: let attempts finish until the hard stop, then drop the rest; their
    // entries stay pending and their leases expire.
    tokio::select! {
        () = async { while executor.attempts.join_next().await.is_some() {} } => {}
        () = shared.hard_stop.cancelled() => executor.attempts.abort_all(),
    }
    drop(executor);
    // The recorder ends once the fan-out has dropped its lanes too.
    if let Err(error) = recorder.await {
        tracing::error!(service, error = %error, "recorder task failed");
    }
    keeper_stop.cancel();
    let _ = keeper.await;
}

struct Executor {
    shared: Arc<Shared>,
    stream: String,
    lane: Lane,
    /// Permits reserved for the next read; dropping them gives capacity back.
    reserved: Vec<OwnedSemaphorePermit>,
    /// Whether the last read found the stream emptied (nothing, or fewer
    /// entries than reserved): the next (blocking) read then holds a single
    /// permit, leaving the rest to the fan-out's direct runs.
    idle: bool,
    attempts: JoinSet<()>,
}

impl ReadLoop for Executor {
    async fn reserve(&mut self) -> usize {
        // Reap finished attempt tasks so the set does not grow.
        while self.attempts.try_join_next().is_some() {}
        if self.reserved.is_empty() {
            let permit = self
                .lane
                .permits
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            self.reserved.push(permit);
        }
        let wanted = if self.idle {
            1
        } else {
            self.shared.settings.batch_size
        };
        while self.reserved.len() < wanted {
            match self.lane.permits.clone().try_acquire_owned() {
                Ok(permit) => self.reserved.push(permit),
                Err(_) => break,
            }
        }
        self.reserved.len()
    }

    async fn handle(&mut self, entries: Vec<Entry>) {
        // Only a read that filled every reserved slot suggests a backlog. A
        // partial one emptied the stream: the next read blocks, and holding a
        // batch of permits through that wait would starve the fan-out's
        // direct runs, whose spill would then keep this path busy.
        self.idle = entries.len() < self.reserved.len();
        self.start_attempts(entries).await;
        self.reserved.clear();
    }

    fn release(&mut self) {
        self.idle = true;
        self.reserved.clear();
    }
}

impl Executor {
    async fn start_attempts(&mut self, entries: Vec<Entry>) {
        let mut entry_of: HashMap<Uuid, String> = HashMap::with_capacity(entries.len());
        let mut not_ours = Vec::new();
        for entry in entries {
            match self.job_execution(&entry) {
                Ok(id) => {
                    if let Some(duplicate) = entry_of.insert(id, entry.id) {
                        not_ours.push(duplicate);
                    }
                }
                Err(reason) => self.dead_letter(&entry, reason).await,
            }
        }
        let ids: Vec<Uuid> = entry_of.keys().copied().collect();

        let settings = &self.shared.settings;
        let claimed = until_ok(
            "claim executions",
            &self.shared.hard_stop,
            area_store::Error::is_transient,
            || {
                self.shared
                    .store
                    .claim_executions(&ids, &settings.worker, settings.lease)
            },
        )
        .await;
        let claimed = match claimed {
            Ok(claimed) => claimed,
            Err(Abandoned::Permanent(error)) => {
                tracing::error!(service = self.lane.service, error = %error, "claim failed; jobs stay pending");
                return;
            }
            Err(Abandoned::Stopped) => {
                tracing::warn!(
                    service = self.lane.service,
                    "claim abandoned; jobs stay pending"
                );
                return;
            }
        };

        for execution in claimed {
            let Some(entry_id) = entry_of.remove(&execution.id) else {
                continue;
            };
            let permit = self
                .reserved
                .pop()
                .expect("one permit was reserved per entry read");
            self.lane.start(
                &self.shared,
                &mut self.attempts,
                execution,
                Origin::Job(entry_id),
                permit,
            );
        }

        // Jobs whose execution is done, canceled, not yet due or running under a
        // live lease elsewhere: nothing to do but acknowledge them.
        not_ours.extend(entry_of.into_values());
        if !not_ours.is_empty() {
            let acked = until_ok(
                "ack skipped jobs",
                &self.shared.hard_stop,
                area_stream::Error::is_connection,
                || self.shared.redis.ack_and_delete(&self.stream, &not_ours),
            )
            .await;
            if acked.is_err() {
                tracing::warn!(service = self.lane.service, "ack of skipped jobs abandoned");
            }
        }
    }

    fn job_execution(&self, entry: &Entry) -> Result<Uuid, DeadLetterReason> {
        if let Some(count) = entry.delivery_count
            && count > self.shared.settings.max_deliveries
        {
            return Err(DeadLetterReason::new(
                "poison",
                format!("delivered {count} times without being processed"),
            ));
        }
        let raw = entry.field(EXECUTION_FIELD).ok_or_else(|| {
            DeadLetterReason::new(
                "missing_execution_field",
                "the job has no `execution` field",
            )
        })?;
        std::str::from_utf8(raw)
            .ok()
            .and_then(|text| Uuid::parse_str(text).ok())
            .ok_or_else(|| {
                DeadLetterReason::new(
                    "invalid_execution_id",
                    "the job's `execution` is not a UUID",
                )
            })
    }

    async fn dead_letter(&self, entry: &Entry, reason: DeadLetterReason) {
        tracing::warn!(service = self.lane.service, entry_id = %entry.id, code = %reason.code, "job dead-lettered");
        metrics::counter!("area_dead_letters_total", "code" => reason.code.clone()).increment(1);
        let result = until_ok(
            "dead-letter job",
            &self.shared.hard_stop,
            area_stream::Error::is_connection,
            || self.shared.redis.dead_letter(&self.stream, entry, &reason),
        )
        .await;
        if result.is_err() {
            tracing::warn!(service = self.lane.service, entry_id = %entry.id, "dead-letter abandoned");
        }
    }
}
