//! The scheduler: moves due retries from the schedule to their job streams, and
//! rebuilds from PostgreSQL what Redis lost.
//!
//! Two kinds of loss are repaired:
//!
//! - a `retry` row due for longer than the claim threshold lost its schedule
//!   entry (Redis restarted without persistence, the key was deleted). A
//!   periodic sweep finds these through the `next_attempt_at` index and
//!   re-enqueues their jobs;
//! - when a consumer group had to be created (at start or later: the stream
//!   is new, or Redis lost it) or a pending entry vanished, jobs of any
//!   unsettled execution may be gone. One pass over the table then schedules
//!   every `queued`, `retry` and `running` row again: queued rows now, retries
//!   when due, running rows when their lease ends (a claim before that finds a
//!   live lease and leaves the row to its worker).
//!
//! A job that still existed runs once all the same: the claim's compare-and-set
//! lets only one of two copies move the row to `running`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use area_stream::{Job, ScheduledRetry};
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
        if shared.rebuild_jobs.swap(false, Ordering::Relaxed) && !rebuild_jobs(&shared).await {
            // Try again at the next tick.
            shared.request_job_rebuild();
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
        .stale_retries(shared.settings.claim_idle, 1000)
        .await
    {
        Ok(stale) => stale,
        Err(error) => {
            tracing::debug!(error = %error, "cannot sweep for lost retries now");
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
        "re-enqueuing retries whose schedule entry was lost"
    );
    metrics::counter!("area_stale_reenqueued_total").increment(jobs.len() as u64);
    if let Err(error) = shared.redis.enqueue_jobs(&jobs).await {
        tracing::warn!(error = %error, "cannot re-enqueue lost retries now");
    }
}

/// Schedules every unsettled execution again; false when PostgreSQL or Redis
/// failed before the pass was complete (it is then run again from the start).
async fn rebuild_jobs(shared: &Shared) -> bool {
    const PAGE: i64 = 1000;
    let claim_idle_ms = i64::try_from(shared.settings.claim_idle.as_millis()).unwrap_or(i64::MAX);
    let mut after = None;
    let mut scheduled = 0_u64;
    loop {
        if shared.hard_stop.is_cancelled() {
            return false;
        }
        let page = match shared.store.unsettled_executions(after, PAGE).await {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(error = %error, "cannot read unsettled executions to rebuild their jobs");
                return false;
            }
        };
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let full = page.len() as i64 == PAGE;
        let retries: Vec<ScheduledRetry> = page
            .into_iter()
            .map(|execution| ScheduledRetry {
                due_at_ms: if execution.lease_alive {
                    // Past the lease by the claim threshold, as a pending entry
                    // would be: clocks of worker and database may differ.
                    execution.due_at_ms.saturating_add(claim_idle_ms)
                } else {
                    execution.due_at_ms
                },
                service: execution.service,
                execution_id: execution.id,
            })
            .collect();
        if let Err(error) = shared.redis.schedule_retries(&retries).await {
            tracing::warn!(error = %error, "cannot schedule rebuilt jobs");
            return false;
        }
        scheduled += retries.len() as u64;
        if !full {
            break;
        }
    }
    if scheduled > 0 {
        tracing::warn!(
            count = scheduled,
            "Redis may have lost jobs: every unsettled execution is scheduled again from PostgreSQL"
        );
        metrics::counter!("area_jobs_rebuilt_total").increment(scheduled);
    }
    true
}
