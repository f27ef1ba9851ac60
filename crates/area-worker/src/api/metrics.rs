//! Prometheus metrics: the process-wide recorder and `GET /metrics`.
//!
//! The engine records counters, gauges and histograms through the `metrics`
//! facade; this module installs the Prometheus recorder behind it, once per
//! process (a global recorder cannot be replaced, and tests start several
//! workers in one process), runs its upkeep on a thread of its own, and renders
//! it at scrape time. Stream gauges (length, pending, lag, age of the oldest
//! pending entry, dead letters, retry schedule) are refreshed from Redis at
//! each scrape, so they are as fresh as the scrape and cost nothing between.
//!
//! # Limitations
//!
//! Metrics are per process: two workers started in one process (as tests do)
//! share counters; their stream gauges differ by the `stream` label.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::ApiState;

/// Upper bounds of the duration histograms, in seconds.
const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often the recorder's histograms are compacted.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's Prometheus handle, installing the recorder on first use.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(install).clone()
}

fn install() -> PrometheusHandle {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &DURATION_BUCKETS)
        .expect("the bucket list is not empty");
    let handle = match builder.install_recorder() {
        Ok(handle) => handle,
        Err(error) => {
            // Another recorder owns the facade (an embedding program installed
            // its own): serve an empty registry rather than fail the worker.
            tracing::warn!(error = %error, "cannot install the metrics recorder; /metrics will be empty");
            PrometheusBuilder::new().build_recorder().handle()
        }
    };
    describe();

    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(error = %error, "cannot start the metrics upkeep thread");
    }
    handle
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};

    describe_counter!("area_events_read_total", "Event stream entries read");
    describe_counter!(
        "area_executions_total",
        "Executions that reached a final status (ok, failed, canceled), by service"
    );
    describe_counter!(
        "area_attempts_total",
        "Attempts recorded, by service and outcome"
    );
    describe_histogram!(
        "area_attempt_duration_seconds",
        "Duration of one attempt, by service"
    );
    describe_counter!(
        "area_retries_scheduled_total",
        "Failed attempts whose execution was scheduled for a retry, by service"
    );
    describe_counter!(
        "area_retries_enqueued_total",
        "Due retries moved from the schedule to their job stream"
    );
    describe_counter!(
        "area_manual_retries_total",
        "Executions retried by hand through the API, by service"
    );
    describe_counter!("area_dead_letters_total", "Entries dead-lettered, by code");
    describe_gauge!("area_in_flight", "Attempts running now");
    describe_gauge!("area_paused", "1 when reading is paused through the API");
    describe_gauge!("area_stream_length", "Entries in the stream");
    describe_gauge!(
        "area_stream_pending",
        "Entries delivered to the worker group and not acknowledged"
    );
    describe_gauge!(
        "area_stream_lag",
        "Entries not yet delivered to the worker group"
    );
    describe_gauge!(
        "area_stream_oldest_pending_age_seconds",
        "Age of the oldest pending entry"
    );
    describe_gauge!(
        "area_dead_letter_length",
        "Entries in the dead-letter stream"
    );
    describe_gauge!(
        "area_retry_schedule_size",
        "Retries waiting in the schedule"
    );
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "probes",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"))
)]
pub(crate) async fn metrics(State(api): State<ApiState>) -> impl IntoResponse {
    refresh_stream_gauges(&api).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        api.metrics.render(),
    )
}

/// Sets the stream gauges from Redis; a failure leaves the previous values and
/// does not fail the scrape.
async fn refresh_stream_gauges(api: &ApiState) {
    metrics::gauge!("area_paused").set(if api.state.is_paused() { 1.0 } else { 0.0 });

    let group = &api.redis.options().group;
    for stream in api.streams() {
        let info = match tokio::time::timeout(
            Duration::from_secs(2),
            api.redis.stream_info(&stream),
        )
        .await
        {
            Ok(Ok(info)) => info,
            Ok(Err(error)) => {
                tracing::debug!(stream, error = %error, "cannot refresh stream gauges");
                continue;
            }
            Err(_) => {
                tracing::debug!(stream, "stream gauges timed out");
                continue;
            }
        };
        metrics::gauge!("area_stream_length", "stream" => stream.clone()).set(info.length as f64);
        if let Some(ours) = info
            .groups
            .iter()
            .find(|candidate| &candidate.name == group)
        {
            metrics::gauge!("area_stream_pending", "stream" => stream.clone())
                .set(ours.pending as f64);
            if let Some(lag) = ours.lag {
                metrics::gauge!("area_stream_lag", "stream" => stream.clone()).set(lag as f64);
            }
            let age = ours.oldest_pending_age_ms.unwrap_or(0) as f64 / 1000.0;
            metrics::gauge!("area_stream_oldest_pending_age_seconds", "stream" => stream.clone())
                .set(age);
        }
    }

    let keys = api.redis.keys();
    if let Ok(length) = api.redis.dead_letter_count().await {
        metrics::gauge!("area_dead_letter_length", "stream" => keys.dead_letters())
            .set(length as f64);
    }
    if let Ok((size, _)) = api.redis.retry_schedule().await {
        metrics::gauge!("area_retry_schedule_size", "key" => keys.retries()).set(size as f64);
    }
}
