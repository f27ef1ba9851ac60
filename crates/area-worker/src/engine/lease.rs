//! Keeping the leases of running attempts alive.
//!
//! An attempt holds its execution through a lease (`lease_until`) and the entry
//! it came from through the pending entry of this consumer: a job entry, or,
//! for an attempt the fan-out started directly, the event entry. Both would let
//! another worker take over a slow but healthy attempt: the lease by expiring,
//! the entry by going idle past the claim threshold. The keeper refreshes both
//! for every attempt of its service that has not been recorded yet, a few times
//! per lease, so that only a worker that stopped loses its executions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Shared;

/// The pending entry an attempt answers for.
#[derive(Clone, Debug)]
pub(crate) enum Origin {
    /// A job entry of the service's job stream, acknowledged and deleted once
    /// the attempt is recorded.
    Job(String),
    /// An event entry whose executions the fan-out ran directly, acknowledged
    /// once every one of them is recorded.
    Event(Arc<EventTicket>),
}

/// An event entry waiting for its directly run attempts to be recorded.
#[derive(Debug)]
pub(crate) struct EventTicket {
    entry_id: String,
    remaining: AtomicUsize,
}

impl EventTicket {
    /// A ticket for `attempts` attempts of the event entry `entry_id`.
    pub(crate) fn new(entry_id: String, attempts: usize) -> Arc<Self> {
        Arc::new(Self {
            entry_id,
            remaining: AtomicUsize::new(attempts),
        })
    }

    /// The event entry's id.
    pub(crate) fn entry_id(&self) -> &str {
        &self.entry_id
    }

    /// Counts one attempt recorded; true for the last one, when the event may
    /// be acknowledged.
    pub(crate) fn settle(&self) -> bool {
        self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
    }
}

/// Attempts started and not yet recorded, with the entry each answers for.
#[derive(Clone, Default)]
pub(crate) struct Held {
    entries: Arc<Mutex<HashMap<Uuid, Origin>>>,
}

/// What the keeper refreshes.
struct Snapshot {
    executions: Vec<Uuid>,
    jobs: Vec<String>,
    events: Vec<String>,
}

impl Held {
    pub(crate) fn insert(&self, execution_id: Uuid, origin: Origin) {
        self.lock().insert(execution_id, origin);
    }

    pub(crate) fn remove(&self, execution_ids: impl IntoIterator<Item = Uuid>) {
        let mut entries = self.lock();
        for id in execution_ids {
            entries.remove(&id);
        }
    }

    fn snapshot(&self) -> Snapshot {
        let entries = self.lock();
        let mut snapshot = Snapshot {
            executions: Vec::with_capacity(entries.len()),
            jobs: Vec::new(),
            events: Vec::new(),
        };
        for (id, origin) in entries.iter() {
            snapshot.executions.push(*id);
            match origin {
                Origin::Job(entry_id) => snapshot.jobs.push(entry_id.clone()),
                Origin::Event(ticket) => snapshot.events.push(ticket.entry_id.clone()),
            }
        }
        drop(entries);
        // Several attempts of one event share its entry.
        snapshot.events.sort_unstable();
        snapshot.events.dedup();
        snapshot
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Origin>> {
        self.entries
            .lock()
            .expect("no code panics while holding this lock")
    }
}

/// Refreshes leases and pending entries until `stop` fires.
pub(crate) async fn keep(shared: Arc<Shared>, stream: String, held: Held, stop: CancellationToken) {
    let settings = &shared.settings;
    let events = shared.redis.keys().events();
    let period = (settings.lease.min(settings.claim_idle) / 3).max(Duration::from_millis(50));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        let snapshot = held.snapshot();
        if snapshot.executions.is_empty() {
            continue;
        }
        if let Err(error) = shared
            .store
            .extend_leases(&snapshot.executions, &settings.worker, settings.lease)
            .await
        {
            tracing::warn!(stream = %stream, error = %error, "cannot extend leases now");
        }
        for (key, ids) in [(&stream, &snapshot.jobs), (&events, &snapshot.events)] {
            if let Err(error) = shared.redis.touch_pending(key, &settings.worker, ids).await {
                tracing::warn!(stream = %key, error = %error, "cannot refresh pending entries now");
            }
        }
    }
}
