//! Live state of the engine that the API reads: pause switch, in-flight count
//! and the last time each reader made progress.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::watch;

/// State shared between the engine and the API.
#[derive(Debug)]
pub struct EngineState {
    paused: watch::Sender<bool>,
    in_flight: AtomicUsize,
    started: Instant,
    progress: Mutex<BTreeMap<String, Instant>>,
    ready: AtomicBool,
}

/// When a reader last completed a read (empty or not).
#[derive(Clone, Debug, Serialize)]
pub struct ServiceProgress {
    /// The stream read.
    pub stream: String,
    /// Milliseconds since its last completed read.
    pub idle_ms: u64,
}

impl Default for EngineState {
    fn default() -> Self {
        Self {
            paused: watch::Sender::new(false),
            in_flight: AtomicUsize::new(0),
            started: Instant::now(),
            progress: Mutex::new(BTreeMap::new()),
            ready: AtomicBool::new(false),
        }
    }
}

impl EngineState {
    /// Stops (true) or restarts (false) the reading of new entries.
    pub fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    /// Whether reading is paused.
    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Waits until reading is not paused.
    pub async fn wait_unpaused(&self) {
        let mut receiver = self.paused.subscribe();
        // The sender lives in self, so the channel cannot close while we wait.
        let _ = receiver.wait_for(|paused| !paused).await;
    }

    /// Attempts running now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn attempt_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("area_in_flight").increment(1.0);
    }

    pub(crate) fn attempt_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("area_in_flight").decrement(1.0);
    }

    /// Seconds since the engine started.
    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    pub(crate) fn record_progress(&self, stream: &str) {
        let mut progress = self
            .progress
            .lock()
            .expect("no code panics while holding this lock");
        match progress.get_mut(stream) {
            Some(at) => *at = Instant::now(),
            None => {
                progress.insert(stream.to_owned(), Instant::now());
            }
        }
    }

    /// Each reader's time since its last completed read.
    pub fn progress(&self) -> Vec<ServiceProgress> {
        let progress = self
            .progress
            .lock()
            .expect("no code panics while holding this lock");
        progress
            .iter()
            .map(|(stream, at)| ServiceProgress {
                stream: stream.clone(),
                idle_ms: at.elapsed().as_millis() as u64,
            })
            .collect()
    }

    /// Marks the engine as started (groups exist, readers running).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether the engine has started.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}
