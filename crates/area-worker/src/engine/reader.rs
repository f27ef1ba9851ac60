//! The loop every stream reader runs: reserve capacity, claim entries other
//! consumers abandoned, read new entries, hand them to the stage's handler.
//!
//! Read failures never end the loop. A missing group (Redis restarted without
//! persistence, stream key deleted) is recreated and reported as possible loss;
//! any other failure waits with capped backoff, so an outage costs a few log
//! lines rather than a spinning core.

use std::sync::Arc;
use std::time::{Duration, Instant};

use area_stream::{Consumer, DeadLetterReason, Entry};
use tokio_util::sync::CancellationToken;

use super::Shared;

const MAX_FAILURE_DELAY: Duration = Duration::from_secs(5);

/// A pipeline stage fed by a reader.
pub(crate) trait ReadLoop: Send {
    /// Waits until the stage can take entries and returns how many (at least 1).
    fn reserve(&mut self) -> impl Future<Output = usize> + Send;

    /// Processes entries read or claimed; returns when they are acknowledged or
    /// handed on.
    fn handle(&mut self, entries: Vec<Entry>) -> impl Future<Output = ()> + Send;

    /// Gives back capacity reserved but not used.
    fn release(&mut self) {}
}

/// Reads `stream` until `shutdown`, then returns the handler for draining.
pub(crate) async fn reader_loop<H: ReadLoop>(
    shared: Arc<Shared>,
    stream: String,
    shutdown: CancellationToken,
    mut handler: H,
) -> H {
    let Some(mut consumer) = connect(&shared, &stream, &shutdown).await else {
        return handler;
    };
    let claim_interval =
        (shared.settings.claim_idle / 2).clamp(Duration::from_millis(100), Duration::from_secs(30));
    let mut next_claim = Instant::now();
    let mut failure_delay = Duration::from_millis(50);

    loop {
        if shutdown.is_cancelled() {
            break;
        }
        if shared.state.is_paused() {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = shared.state.wait_unpaused() => continue,
            }
        }
        let capacity = tokio::select! {
            () = shutdown.cancelled() => break,
            capacity = handler.reserve() => capacity,
        };

        let result = if Instant::now() >= next_claim {
            next_claim = Instant::now() + claim_interval;
            claim(&shared, &mut consumer, capacity).await
        } else {
            Ok(Vec::new())
        };
        let result = match result {
            Ok(claimed) if !claimed.is_empty() => {
                if claimed.len() >= capacity {
                    // More may be waiting: claim again at the next turn
                    // rather than a claim interval later.
                    next_claim = Instant::now();
                }
                Ok(claimed)
            }
            Ok(_) => consumer.read(capacity).await,
            Err(error) => Err(error),
        };

        match result {
            Ok(entries) => {
                failure_delay = Duration::from_millis(50);
                shared.state.record_progress(&stream);
                if entries.is_empty() {
                    handler.release();
                } else {
                    handler.handle(entries).await;
                }
            }
            Err(error) => {
                handler.release();
                if error.is_missing_group() {
                    // Recreated at once; should it vanish again, the backoff below
                    // keeps a repeating loss from becoming a busy loop.
                    recreate_group(&shared, &stream).await;
                } else {
                    tracing::warn!(stream = %stream, error = %error, "stream read failed, retrying");
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(failure_delay) => {}
                }
                failure_delay = (failure_delay * 2).min(MAX_FAILURE_DELAY);
            }
        }
    }
    handler
}

async fn connect(shared: &Shared, stream: &str, shutdown: &CancellationToken) -> Option<Consumer> {
    let mut delay = Duration::from_millis(50);
    loop {
        match Consumer::new(&shared.redis, stream, &shared.settings.worker).await {
            Ok(consumer) => return Some(consumer),
            Err(error) => {
                tracing::warn!(stream, error = %error, "cannot connect the stream reader, retrying");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_FAILURE_DELAY);
    }
}

/// Claims entries idle on any consumer for longer than the claim threshold.
/// Entries that vanished while pending are recorded as lost.
async fn claim(
    shared: &Shared,
    consumer: &mut Consumer,
    capacity: usize,
) -> Result<Vec<Entry>, area_stream::Error> {
    let claimed = consumer
        .claim_idle(shared.settings.claim_idle, capacity)
        .await?;
    for id in &claimed.deleted {
        tracing::error!(
            stream = consumer.stream(),
            entry_id = %id,
            "a pending entry was deleted or trimmed before it was processed; it is lost"
        );
        metrics::counter!("area_lost_entries_total", "stream" => consumer.stream().to_owned())
            .increment(1);
        let record = Entry {
            id: id.clone(),
            fields: Vec::new(),
            delivery_count: None,
        };
        let reason =
            DeadLetterReason::new("lost", "deleted or trimmed from the stream while pending");
        shared.request_job_rebuild();
        if let Err(error) = shared
            .redis
            .dead_letter(consumer.stream(), &record, &reason)
            .await
        {
            tracing::warn!(entry_id = %id, error = %error, "cannot record the lost entry");
        }
    }
    if !claimed.entries.is_empty() {
        tracing::info!(
            stream = consumer.stream(),
            count = claimed.entries.len(),
            "claimed entries left pending by other consumers"
        );
    }
    Ok(claimed.entries)
}

async fn recreate_group(shared: &Shared, stream: &str) {
    tracing::error!(
        stream,
        "the stream or its consumer group is gone (Redis restarted without persistence, or the \
         key was deleted); recreating it: entries added before may have been lost"
    );
    metrics::counter!("area_group_recreated_total", "stream" => stream.to_owned()).increment(1);
    shared.request_job_rebuild();
    if let Err(error) = shared.redis.ensure_group(stream).await {
        tracing::warn!(stream, error = %error, "cannot recreate the group yet");
    }
}
