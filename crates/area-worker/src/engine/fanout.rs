//! Fan-out: events in, execution rows and jobs out.
//!
//! For each batch of events: decode them (invalid ones are dead-lettered with
//! the reason and acknowledged), look up the enabled reactions of their AREAs in
//! one query, insert one `queued` row per (event, reaction) in one statement,
//! publish one job per row still `queued`, and only then acknowledge the events.
//! A crash anywhere before the ack leaves the events pending; delivered again,
//! they find their rows by dedup key and publish the jobs that may be missing,
//! so nothing is lost and no row is duplicated.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use area_core::{Event, EventError};
use area_store::{AreaPlan, NewExecution};
use area_stream::{DeadLetterReason, EVENT_FIELD, Entry, Job};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Shared;
use super::backoff::{Abandoned, until_ok};
use super::reader::{ReadLoop, reader_loop};
use super::sanitize::sanitize_event;
use crate::reactions::WORKSPACE_SERVICES;

/// Runs the fan-out reader until shutdown.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let stream = shared.redis.keys().events();
    let handler = FanOut {
        shared: shared.clone(),
        stream: stream.clone(),
        unknown_services: Mutex::new(HashSet::new()),
    };
    reader_loop(shared, stream, shutdown, handler).await;
    tracing::debug!("fan-out stopped");
}

struct FanOut {
    shared: Arc<Shared>,
    stream: String,
    /// Services named by reactions that no reaction crate of the workspace
    /// provides, each already reported once.
    unknown_services: Mutex<HashSet<String>>,
}

/// An event that passed decoding, with the entry it came from.
struct Decoded {
    entry: Entry,
    event: Event,
}

impl ReadLoop for FanOut {
    async fn reserve(&mut self) -> usize {
        self.shared.settings.batch_size
    }

    async fn handle(&mut self, entries: Vec<Entry>) {
        self.process(entries).await;
    }
}

impl FanOut {
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

        let Some(rows_and_acks) = self.plan(&decoded).await else {
            return;
        };
        let (rows, ack_ids) = rows_and_acks;
        let Some(jobs) = self.insert(rows).await else {
            return;
        };
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
    async fn plan(&self, decoded: &[Decoded]) -> Option<(Vec<NewExecution>, Vec<String>)> {
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

        let mut rows = Vec::with_capacity(decoded.len());
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
            }
        }
        Some((rows, ack_ids))
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

    /// Inserts the rows and returns the jobs to publish.
    async fn insert(&self, rows: Vec<NewExecution>) -> Option<Vec<Job>> {
        let inserted = until_ok(
            "insert executions",
            &self.shared.hard_stop,
            area_store::Error::is_transient,
            || self.shared.store.insert_executions(&rows),
        )
        .await;
        let queued = match inserted {
            Ok(queued) => queued,
            Err(error) => {
                log_abandoned("insert executions", &error);
                return None;
            }
        };
        Some(
            queued
                .into_iter()
                .filter(|row| row.needs_job())
                .map(|row| Job {
                    service: row.service,
                    execution_id: row.id,
                })
                .collect(),
        )
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
