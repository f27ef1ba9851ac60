//! The recorder: stores attempt results in batches, schedules retries, and only
//! then acknowledges the entries the attempts came from.
//!
//! Order matters: (1) the batch's rows are updated in one statement; (2) the
//! retries among them are added to the schedule; (3) the jobs are acknowledged,
//! and so are the events whose directly run attempts are now all recorded.
//! A crash after (1) leaves the entries pending; claimed again, a job finds its
//! row no longer running and is acknowledged, an event finds its rows and
//! publishes jobs only for those not settled. A retry whose (2) was lost is
//! found by the scheduler's sweep of PostgreSQL.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use area_store::{AttemptRecord, RecordedStatus};
use area_stream::ScheduledRetry;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::Shared;
use super::backoff::{Abandoned, until_ok};
use super::lease::{Held, Origin};

/// A finished attempt waiting to be recorded.
pub(crate) struct Finished {
    /// The entry the attempt answers for.
    pub origin: Origin,
    /// What to store.
    pub record: AttemptRecord,
    /// When the attempt started.
    pub started: Instant,
    /// The attempt's concurrency slot; dropping it after the write lets the
    /// reader take another job.
    pub _permit: OwnedSemaphorePermit,
}

/// Entries of one recorded batch, to acknowledge.
#[derive(Default)]
struct Acks {
    jobs: Vec<String>,
    events: Vec<String>,
}

/// Batches written at once: the next batch's UPDATE need not wait for the
/// previous one's commit.
const WRITES_IN_FLIGHT: usize = 2;

/// Batches of acknowledgements the acker may hold before the recorder waits.
const ACKS_QUEUED: usize = 16;

/// Records results until every sender is gone.
///
/// The acknowledgements of a stored batch go to a task of their own, so the
/// next batch's write does not wait for Redis's answer: each entry is still
/// acknowledged only after its row is stored.
pub(crate) async fn run(
    shared: Arc<Shared>,
    service: &'static str,
    stream: String,
    mut receiver: mpsc::Receiver<Finished>,
    held: Held,
) {
    let (acks, pending) = mpsc::channel(ACKS_QUEUED);
    let acker = tokio::spawn(ack_loop(shared.clone(), stream, pending));
    let limit = shared.settings.batch_size;
    let mut writes: JoinSet<bool> = JoinSet::new();
    'receive: loop {
        // A free write slot first: results keep collecting meanwhile, so the
        // next batch is as large as the wait allowed.
        while writes.len() >= WRITES_IN_FLIGHT {
            if let Some(Ok(false)) = writes.join_next().await {
                // The hard stop fired: leave the rest pending for other workers.
                break 'receive;
            }
        }
        let mut batch: Vec<Finished> = Vec::with_capacity(limit);
        if receiver.recv_many(&mut batch, limit).await == 0 {
            break;
        }
        let (shared, acks, held) = (shared.clone(), acks.clone(), held.clone());
        writes.spawn(async move {
            if !record_batch(&shared, service, &acks, &batch).await {
                return false;
            }
            held.remove(batch.iter().map(|finished| finished.record.id));
            true
        });
    }
    while writes.join_next().await.is_some() {}
    drop(acks);
    if let Err(error) = acker.await {
        tracing::error!(service, error = %error, "ack task failed");
    }
}

/// Acknowledges stored batches, merging those that queued up meanwhile.
async fn ack_loop(shared: Arc<Shared>, stream: String, mut pending: mpsc::Receiver<Acks>) {
    let event_stream = shared.redis.keys().events();
    let mut received = Vec::with_capacity(ACKS_QUEUED);
    while pending.recv_many(&mut received, ACKS_QUEUED).await > 0 {
        let mut merged = Acks::default();
        for acks in received.drain(..) {
            merged.jobs.extend(acks.jobs);
            merged.events.extend(acks.events);
        }
        let acked = until_ok(
            "ack jobs",
            &shared.hard_stop,
            area_stream::Error::is_connection,
            || shared.redis.ack_and_delete(&stream, &merged.jobs),
        )
        .await;
        if acked.is_err() {
            return;
        }
        let acked = until_ok(
            "ack events",
            &shared.hard_stop,
            area_stream::Error::is_connection,
            || shared.redis.ack(&event_stream, &merged.events),
        )
        .await;
        if acked.is_err() {
            return;
        }
    }
}

/// Returns false when the hard stop interrupted it.
async fn record_batch(
    shared: &Shared,
    service: &'static str,
    acks: &mpsc::Sender<Acks>,
    batch: &[Finished],
) -> bool {
    let records: Vec<AttemptRecord> = batch
        .iter()
        .map(|finished| finished.record.clone())
        .collect();
    let Some(changed) = store(shared, &records).await else {
        return false;
    };

    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    let retries: Vec<ScheduledRetry> = records
        .iter()
        .filter(|record| changed.contains(&record.id))
        .filter_map(|record| match record.status {
            RecordedStatus::Retry { delay } => Some(ScheduledRetry {
                service: service.to_owned(),
                execution_id: record.id,
                due_at_ms: now_ms + delay.as_millis() as i64,
            }),
            _ => None,
        })
        .collect();
    let scheduled = until_ok(
        "schedule retries",
        &shared.hard_stop,
        area_stream::Error::is_connection,
        || shared.redis.schedule_retries(&retries),
    )
    .await;
    if let Err(Abandoned::Permanent(error)) = &scheduled {
        // The rows say `retry` with a due time; the sweep re-enqueues them.
        tracing::error!(service, error = %error, "cannot schedule retries; the sweep will find them");
    }
    if matches!(scheduled, Err(Abandoned::Stopped)) {
        return false;
    }

    let mut ready = Acks {
        jobs: Vec::with_capacity(batch.len()),
        events: Vec::new(),
    };
    for finished in batch {
        match &finished.origin {
            Origin::Job(entry_id) => ready.jobs.push(entry_id.clone()),
            Origin::Event(ticket) => {
                if ticket.settle() {
                    ready.events.push(ticket.entry_id().to_owned());
                }
            }
        }
    }
    // The acker only stops at the hard stop.
    if acks.send(ready).await.is_err() {
        return false;
    }

    for finished in batch {
        let status = if !changed.contains(&finished.record.id) {
            "superseded"
        } else {
            match finished.record.status {
                RecordedStatus::Ok => "ok",
                RecordedStatus::Retry { .. } => "retry",
                RecordedStatus::Failed => "failed",
            }
        };
        metrics::counter!("area_attempts_total", "service" => service, "status" => status)
            .increment(1);
        match status {
            "ok" | "failed" => {
                metrics::counter!("area_executions_total", "service" => service, "status" => status)
                    .increment(1)
            }
            "retry" => {
                metrics::counter!("area_retries_scheduled_total", "service" => service).increment(1)
            }
            _ => {}
        }
        metrics::histogram!("area_attempt_to_record_seconds", "service" => service)
            .record(finished.started.elapsed().as_secs_f64());
    }
    true
}

/// Stores the records; falls back to one record at a time when the batch hits a
/// permanent error, so one unstorable result cannot hold back the others.
async fn store(shared: &Shared, records: &[AttemptRecord]) -> Option<Vec<Uuid>> {
    let worker = &shared.settings.worker;
    let result = until_ok(
        "record attempts",
        &shared.hard_stop,
        area_store::Error::is_transient,
        || shared.store.record_attempts(records, worker),
    )
    .await;
    match result {
        Ok(changed) => Some(changed),
        Err(Abandoned::Stopped) => None,
        Err(Abandoned::Permanent(error)) => {
            tracing::error!(error = %error, "batch of results rejected; recording one by one");
            let mut changed = Vec::new();
            for record in records {
                changed.extend(store_alone(shared, record).await?);
            }
            Some(changed)
        }
    }
}

async fn store_alone(shared: &Shared, record: &AttemptRecord) -> Option<Vec<Uuid>> {
    let worker = &shared.settings.worker;
    let single = std::slice::from_ref(record);
    let first = until_ok(
        "record attempt",
        &shared.hard_stop,
        area_store::Error::is_transient,
        || shared.store.record_attempts(single, worker),
    )
    .await;
    let error = match first {
        Ok(changed) => return Some(changed),
        Err(Abandoned::Stopped) => return None,
        Err(Abandoned::Permanent(error)) => error,
    };
    tracing::error!(execution_id = %record.id, error = %error, "result cannot be stored; recording its failure instead");
    let replacement = AttemptRecord {
        status: RecordedStatus::Failed,
        output: None,
        error: Some(serde_json::json!({
            "class": "permanent",
            "code": "unstorable_result",
            "message": "the attempt's result could not be stored",
        })),
        ..record.clone()
    };
    let replacement = std::slice::from_ref(&replacement);
    match until_ok(
        "record replacement",
        &shared.hard_stop,
        area_store::Error::is_transient,
        || shared.store.record_attempts(replacement, worker),
    )
    .await
    {
        Ok(changed) => Some(changed),
        Err(Abandoned::Stopped) => None,
        Err(Abandoned::Permanent(error)) => {
            tracing::error!(execution_id = %record.id, error = %error, "cannot record the execution at all");
            Some(Vec::new())
        }
    }
}
