//! The ceilings of the parts alone, measured with the client libraries the
//! worker uses, so the pipeline's rate can be read as a fraction of what its
//! slowest part could do:
//!
//! - **Redis**: XADD of N entries in pipelines, then the read/ack loop of one
//!   consumer (`area_stream::Consumer::read` at the engine's batch size, then
//!   `Redis::ack`), as each of the worker's readers runs it;
//! - **PostgreSQL**: the whole lifecycle of execution rows with `area-store`'s
//!   own queries at the engine's batch size (`insert_executions_running`, as
//!   the fan-out inserts the rows it runs itself, then `record_attempts`), from
//!   one or more concurrent loops, on a scratch database. The pipeline's rows
//!   that go through a job stream also pay a claim; the ceiling leaves it out,
//!   so it is the higher of the two and the ratio the harder;
//! - **receiver**: reqwest, many requests in flight, for a few seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use area_store::{AttemptRecord, NewExecution, RecordedStatus, Store, StoreOptions};
use area_stream::{Consumer, Redis, RedisOptions, StreamKeys};
use serde_json::Value;
use uuid::Uuid;

use crate::bench_process::Watched;
use crate::bench_receiver::{self, ReceiverProcess};

/// The Redis ceilings, in entries per second.
#[derive(Clone, Copy, Debug)]
pub struct RedisCeiling {
    /// Pipelined XADD.
    pub xadd_per_s: f64,
    /// XREADGROUP COUNT batch + XACK of the batch, one consumer.
    pub read_ack_per_s: f64,
}

/// The PostgreSQL ceiling at one number of concurrent loops.
#[derive(Clone, Copy, Debug)]
pub struct PostgresCeiling {
    /// Concurrent insert→record loops, one connection each.
    pub loops: usize,
    /// Rows taken through their whole lifecycle per second.
    pub lifecycle_per_s: f64,
    /// Rows per second of one connection's inserts alone.
    pub insert_per_s: f64,
    /// Rows per second of one connection's records alone.
    pub record_per_s: f64,
}

/// The receiver's ceiling.
#[derive(Clone, Copy, Debug)]
pub struct ReceiverCeiling {
    /// Requests per second answered to a reqwest load loop on the same host.
    pub per_s: f64,
    /// The receiver's CPU seconds per 1,000 requests.
    pub cpu_ms_per_request: f64,
}

/// Measures the read/ack loop on a scratch stream of `entries` copies of `body`.
pub async fn redis(
    redis_url: &str,
    prefix: &str,
    entries: usize,
    batch: usize,
    body: &[u8],
) -> anyhow::Result<RedisCeiling> {
    let mut options = RedisOptions::new(redis_url);
    options.keys = StreamKeys::new(format!("{prefix}ceiling:"));
    let redis = Redis::connect(options)
        .await
        .with_context(|| format!("connect to Redis at {redis_url}"))?;
    let stream = redis.keys().events();
    let mut connection = redis.connection();
    redis::cmd("UNLINK")
        .arg(&stream)
        .query_async::<()>(&mut connection)
        .await?;
    redis.ensure_group(&stream).await?;

    let started = Instant::now();
    for chunk_start in (0..entries).step_by(1000) {
        let mut pipeline = redis::pipe();
        for _ in chunk_start..(chunk_start + 1000).min(entries) {
            pipeline
                .cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg(area_stream::EVENT_FIELD)
                .arg(body)
                .ignore();
        }
        pipeline.query_async::<()>(&mut connection).await?;
    }
    let xadd_per_s = entries as f64 / started.elapsed().as_secs_f64();

    let mut consumer = Consumer::new(&redis, &stream, "ceiling").await?;
    let started = Instant::now();
    let mut read = 0;
    while read < entries {
        let batch_entries = consumer.read(batch).await?;
        anyhow::ensure!(
            !batch_entries.is_empty(),
            "the stream ran dry after {read} entries"
        );
        let ids: Vec<String> = batch_entries.into_iter().map(|entry| entry.id).collect();
        redis.ack(&stream, &ids).await?;
        read += ids.len();
    }
    let read_ack_per_s = entries as f64 / started.elapsed().as_secs_f64();

    redis::cmd("UNLINK")
        .arg(&stream)
        .query_async::<()>(&mut connection)
        .await?;
    Ok(RedisCeiling {
        xadd_per_s,
        read_ack_per_s,
    })
}

/// Measures the lifecycle of `rows` execution rows for each number of loops in
/// `loop_counts`, on the scratch database `database_url` (created and
/// migrated; the caller drops it).
pub async fn postgres(
    database_url: &str,
    rows: usize,
    batch: usize,
    loop_counts: &[usize],
    payload: &Value,
) -> anyhow::Result<Vec<PostgresCeiling>> {
    crate::bench::recreate_database(database_url).await?;
    let mut options = StoreOptions::new(database_url);
    options.max_connections = loop_counts.iter().copied().max().unwrap_or(1);
    let store = Store::connect(&options).await?;

    let mut results = Vec::new();
    for &loops in loop_counts {
        crate::bench::sql(database_url, "TRUNCATE executions").await?;
        let planned: Arc<Vec<NewExecution>> = Arc::new(
            (0..rows)
                .map(|index| {
                    let reaction_id = Uuid::new_v4();
                    let event_id = format!("ceiling-{index}");
                    NewExecution {
                        id: Uuid::now_v7(),
                        area_id: Uuid::new_v4(),
                        reaction_id,
                        dedup_key: NewExecution::dedup_key(&event_id, reaction_id),
                        event_id,
                        service: "webhook".into(),
                        input_payload: payload.clone(),
                        correlation_id: None,
                    }
                })
                .collect(),
        );
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..loops {
            let (store, planned, next) = (store.clone(), planned.clone(), next.clone());
            tasks.spawn(lifecycle_loop(store, planned, next, batch));
        }
        let mut phases = [Duration::ZERO; 2];
        while let Some(result) = tasks.join_next().await {
            let task_phases = result??;
            for (total, phase) in phases.iter_mut().zip(task_phases) {
                *total += phase;
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let per_phase = |phase: Duration| rows as f64 / phase.as_secs_f64().max(1e-9);
        results.push(PostgresCeiling {
            loops,
            lifecycle_per_s: rows as f64 / elapsed,
            insert_per_s: per_phase(phases[0]),
            record_per_s: per_phase(phases[1]),
        });
    }
    Ok(results)
}

/// Takes batches from `planned` until none is left; returns the time spent in
/// inserts and records.
async fn lifecycle_loop(
    store: Store,
    planned: Arc<Vec<NewExecution>>,
    next: Arc<AtomicUsize>,
    batch: usize,
) -> anyhow::Result<[Duration; 2]> {
    let mut phases = [Duration::ZERO; 2];
    loop {
        let start = next.fetch_add(batch, Ordering::Relaxed);
        if start >= planned.len() {
            return Ok(phases);
        }
        let rows = &planned[start..(start + batch).min(planned.len())];

        let here = vec![true; rows.len()];
        let at = Instant::now();
        let inserted = store
            .insert_executions_running(rows, &here, "ceiling", Duration::from_secs(60))
            .await?;
        phases[0] += at.elapsed();
        anyhow::ensure!(
            inserted.len() == rows.len() && inserted.iter().all(|row| row.is_running()),
            "inserted {} of {} running",
            inserted.len(),
            rows.len()
        );

        let records: Vec<AttemptRecord> = inserted
            .iter()
            .map(|execution| AttemptRecord {
                id: execution.id,
                attempt: 1,
                status: RecordedStatus::Ok,
                output: Some(serde_json::json!({"status": 200, "body": "", "truncated": false})),
                error: None,
            })
            .collect();
        let at = Instant::now();
        let changed = store.record_attempts(&records, "ceiling").await?;
        phases[1] += at.elapsed();
        anyhow::ensure!(
            changed.len() == rows.len(),
            "recorded {} of {}",
            changed.len(),
            rows.len()
        );
    }
}

/// Measures the receiver with a reqwest load loop.
pub async fn receiver(
    receiver: &ReceiverProcess,
    body: &'static [u8],
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<ReceiverCeiling> {
    let watched = Watched {
        worker: std::process::id(),
        redis: None,
        receiver: receiver.pid(),
    };
    let before = watched.read();
    let (per_s, requests) = bench_receiver::load(receiver, body, concurrency, duration).await?;
    let after = watched.read();
    let cpu = after.since(&before, "receiver");
    Ok(ReceiverCeiling {
        per_s,
        cpu_ms_per_request: cpu * 1000.0 / requests.max(1) as f64,
    })
}
