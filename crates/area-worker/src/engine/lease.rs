//! Keeping the leases of running attempts alive.
//!
//! An attempt holds its execution through a lease (`lease_until`) and its job
//! through the pending entry of this consumer. Both would let another worker take
//! over a slow but healthy attempt: the lease by expiring, the entry by going idle
//! past the claim threshold. The keeper refreshes both for every attempt of its
//! service that has not been recorded yet, a few times per lease, so that only a
//! worker that stopped loses its executions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Shared;

/// Attempts started and not yet recorded: execution id → job entry id.
#[derive(Clone, Default)]
pub(crate) struct Held {
    entries: Arc<Mutex<HashMap<Uuid, String>>>,
}

impl Held {
    pub(crate) fn insert(&self, execution_id: Uuid, entry_id: String) {
        self.lock().insert(execution_id, entry_id);
    }

    pub(crate) fn remove(&self, execution_ids: impl IntoIterator<Item = Uuid>) {
        let mut entries = self.lock();
        for id in execution_ids {
            entries.remove(&id);
        }
    }

    fn snapshot(&self) -> (Vec<Uuid>, Vec<String>) {
        self.lock()
            .iter()
            .map(|(id, entry)| (*id, entry.clone()))
            .unzip()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, String>> {
        self.entries
            .lock()
            .expect("no code panics while holding this lock")
    }
}

/// Refreshes leases and pending entries until `stop` fires.
pub(crate) async fn keep(shared: Arc<Shared>, stream: String, held: Held, stop: CancellationToken) {
    let settings = &shared.settings;
    let period = (settings.lease.min(settings.claim_idle) / 3).max(Duration::from_millis(50));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        let (execution_ids, entry_ids) = held.snapshot();
        if execution_ids.is_empty() {
            continue;
        }
        if let Err(error) = shared
            .store
            .extend_leases(&execution_ids, &settings.worker, settings.lease)
            .await
        {
            tracing::warn!(stream = %stream, error = %error, "cannot extend leases now");
        }
        if let Err(error) = shared
            .redis
            .touch_pending(&stream, &settings.worker, &entry_ids)
            .await
        {
            tracing::warn!(stream = %stream, error = %error, "cannot refresh pending jobs now");
        }
    }
}
