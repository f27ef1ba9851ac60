//! The engine: the two pipeline stages and the tasks that keep them honest.
//!
//! - **fan-out** reads the event stream, inserts one execution row per enabled
//!   reaction and publishes one job per row, then acknowledges the events. A
//!   new row whose service this process serves and has room for skips the job
//!   stream: the fan-out claims it and hands it to the service's attempts and
//!   recorder itself, and the event's entry stays pending, answering for it,
//!   until its result is recorded;
//! - **execute** (one reader per service this binary serves) claims the jobs'
//!   executions, runs their reactions concurrently up to a bound, and hands the
//!   results to a **recorder** that stores them in batches, schedules retries
//!   and only then acknowledges the jobs;
//! - the **scheduler** moves due retries back to their job streams,
//!   re-enqueues from PostgreSQL the retries whose schedule entry Redis lost,
//!   and, when Redis lost data (a consumer group had to be created, a pending
//!   entry vanished), rebuilds the jobs of every unsettled execution.
//!
//! Every reader also claims entries that other consumers left pending for too
//! long (crashed workers), before reading new ones.
//!
//! # Shutdown
//!
//! The `shutdown` token stops the readers. In-flight attempts may run until the
//! drain deadline; their results are recorded and acknowledged. At the deadline
//! the `hard_stop` token fires: unfinished attempts are dropped and their
//! entries stay pending for another worker, whose claim finds them once the
//! execution's lease expires.

mod attempt;
mod backoff;
mod executor;
mod fanout;
mod lease;
mod reader;
mod recorder;
mod sanitize;
mod scheduler;
mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use area_core::{DecodeLimits, Registry, RetryPolicy};
use area_store::Store;
use area_stream::Redis;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use state::{EngineState, ServiceProgress};

/// Settings of the engine, derived from the configuration.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// This worker's consumer name, also the lease holder's name.
    pub worker: String,
    /// Reactions in flight per service.
    pub concurrency: usize,
    /// Entries per batch.
    pub batch_size: usize,
    /// The default retry policy.
    pub retry_policy: RetryPolicy,
    /// Longest attempt.
    pub reaction_timeout: Duration,
    /// Lease of a running attempt.
    pub lease: Duration,
    /// Idle time after which pending entries are claimed.
    pub claim_idle: Duration,
    /// Deliveries after which an entry is poison.
    pub max_deliveries: u64,
    /// Whether in-doubt attempts of non-deduplicating reactions fail.
    pub fail_in_doubt: bool,
    /// Bounds on events.
    pub decode_limits: DecodeLimits,
    /// Scheduler period.
    pub scheduler_tick: Duration,
    /// Whether the fan-out runs new executions of the services this process
    /// serves itself, when they have room, instead of through their job stream.
    pub direct_run: bool,
}

/// The shared handles every engine task works with.
pub(crate) struct Shared {
    pub store: Store,
    pub redis: Redis,
    pub registry: Registry,
    pub settings: EngineSettings,
    pub state: Arc<EngineState>,
    /// Fires when the drain deadline passes: abandon whatever still waits.
    pub hard_stop: CancellationToken,
    /// Set when Redis may have lost jobs (a group had to be created, a pending
    /// entry vanished); the scheduler then rebuilds them from PostgreSQL.
    pub rebuild_jobs: AtomicBool,
}

impl Shared {
    /// Asks the scheduler to rebuild the jobs of unsettled executions.
    pub fn request_job_rebuild(&self) {
        self.rebuild_jobs.store(true, Ordering::Relaxed);
    }
}

/// Running engine tasks.
pub struct Engine {
    tasks: JoinSet<()>,
    hard_stop: CancellationToken,
    state: Arc<EngineState>,
}

impl Engine {
    /// Creates the streams and groups, then starts every task. The tasks stop
    /// reading when `shutdown` fires.
    pub async fn start(
        store: Store,
        redis: Redis,
        registry: Registry,
        settings: EngineSettings,
        state: Arc<EngineState>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let keys = redis.keys().clone();
        // A group created here is new, or was lost with Redis's data: in the
        // second case jobs of unsettled executions may be gone with it.
        let mut created = redis
            .ensure_group(&keys.events())
            .await
            .context("create the event stream group")?;
        for service in registry.services() {
            created |= redis
                .ensure_group(&keys.jobs(service))
                .await
                .with_context(|| format!("create the job stream group of {service}"))?;
        }

        let hard_stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            store,
            redis,
            registry,
            settings,
            state: state.clone(),
            hard_stop: hard_stop.clone(),
            rebuild_jobs: AtomicBool::new(created),
        });

        let mut tasks = JoinSet::new();
        let mut lanes = Vec::new();
        for service in shared.registry.services() {
            let (lane, receiver) = executor::Lane::new(service, shared.settings.concurrency);
            if shared.settings.direct_run {
                lanes.push(lane.clone());
            }
            tasks.spawn(executor::run(
                shared.clone(),
                lane,
                receiver,
                shutdown.clone(),
            ));
        }
        tasks.spawn(fanout::run(shared.clone(), lanes, shutdown.clone()));
        tasks.spawn(scheduler::run(shared.clone(), shutdown.clone()));
        Ok(Self {
            tasks,
            hard_stop,
            state,
        })
    }

    /// Waits for the tasks to finish after shutdown, at most `deadline`; then
    /// abandons what is still in flight.
    pub async fn drain(mut self, deadline: Duration) {
        tracing::info!(in_flight = self.state.in_flight(), "shutting down");
        let drained = tokio::time::timeout(deadline, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                in_flight = self.state.in_flight(),
                "drain deadline passed; unfinished attempts stay pending for other workers"
            );
            self.hard_stop.cancel();
            // Tasks notice the hard stop at their next await and return quickly.
            if tokio::time::timeout(Duration::from_secs(5), async {
                while self.tasks.join_next().await.is_some() {}
            })
            .await
            .is_err()
            {
                self.tasks.abort_all();
            }
        }
        tracing::info!("drained");
    }
}
