//! The scheduler: moves due retries from the schedule to their job streams, and
//! sweeps PostgreSQL for executions whose job Redis lost.
//!
//! The sweep finds two kinds of executions: `retry` rows due for longer than the
//! claim threshold (their schedule entry was lost, e.g. Redis restarted without
//! persistence), and `running` rows whose lease expired that long ago (their
//! worker died and its job entry is gone). It re-enqueues a job for each;
//! should the original job still exist, the claim's compare-and-set lets only
//! one of them run.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use area_stream::Job;
use tokio_util::sync::CancellationToken;

use super::Shared;

const DUE_BATCH: usize = 1000;

/// Runs until shutdown.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let tick = shared.settings.scheduler_tick;
    let sweep_every = shared
        .settings
        .claim_idle
        .clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut next_sweep = Instant::now() + sweep_every;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = interval.tick() => {}
        }
        move_due_retries(&shared).await;
        if Instant::now() >= next_sweep {
            next_sweep = Instant::now() + sweep_every;
            sweep(&shared).await;
        }
    }
}

async fn move_due_retries(shared: &Shared) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    loop {
        match shared.redis.enqueue_due_retries(now_ms, DUE_BATCH).await {
            Ok(moved) => {
                if moved > 0 {
                    tracing::debug!(moved, "due retries enqueued");
                    metrics::counter!("area_retries_enqueued_total").increment(moved as u64);
                }
                if moved < DUE_BATCH {
                    return;
                }
            }
            Err(error) => {
                tracing::debug!(error = %error, "cannot move due retries now");
                return;
            }
        }
    }
}

async fn sweep(shared: &Shared) {
    let stale = match shared
        .store
        .stale_executions(shared.settings.claim_idle, 1000)
        .await
    {
        Ok(stale) => stale,
        Err(error) => {
            tracing::debug!(error = %error, "cannot sweep for stale executions now");
            return;
        }
    };
    let jobs: Vec<Job> = stale
        .into_iter()
        .filter(|execution| shared.registry.get(&execution.service).is_some())
        .map(|execution| Job {
            service: execution.service,
            execution_id: execution.id,
        })
        .collect();
    if jobs.is_empty() {
        return;
    }
    tracing::warn!(
        count = jobs.len(),
        "re-enqueuing executions whose job was lost"
    );
    metrics::counter!("area_stale_reenqueued_total").increment(jobs.len() as u64);
    if let Err(error) = shared.redis.enqueue_jobs(&jobs).await {
        tracing::warn!(error = %error, "cannot re-enqueue stale executions now");
    }
}
