//! The API against live workers from the outside: `/metrics` of a worker
//! process after a demo-sized run agrees with PostgreSQL, and a schema-driven
//! fuzzer (schemathesis, fed the worker's own OpenAPI document) finds no
//! server error.
//!
//! Metrics are process-wide, and the other tests of this binary run workers in
//! this process; the metrics test therefore runs its worker as a process of its
//! own, whose `/metrics` counts nothing else.
//!
//! The fuzzer is the Python package schemathesis (`python3 -m pip install
//! schemathesis`; `.ci/run` installs it); the test fails, naming that command,
//! when it is missing.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use area_e2e::process::free_port;
use area_e2e::{Receiver, TestEnv, TestWorker, WorkerOptions, WorkerProcess, eventually};
use area_store::ExecutionStatus;
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

const EVENTS: usize = 1_000;

/// One sample of the Prometheus text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the samples of a Prometheus text exposition (enough of the format
/// for the exporter's output: no escaped quotes in label values).
fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    Some((key.to_owned(), value.trim_matches('"').to_owned()))
                })
                .collect();
            Some(Sample {
                name: name.to_owned(),
                labels,
                value,
            })
        })
        .collect()
}

/// The sum of the samples of `name` whose labels include `labels`.
fn total(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|sample| sample.name == name)
        .filter(|sample| {
            labels
                .iter()
                .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(value))
        })
        .map(|sample| sample.value)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_demo_sized_run_agree_with_postgresql() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let mut areas = Vec::new();
    for index in 0..10 {
        let path = match index {
            0 | 1 => format!("/flaky/2/area-{index}"),
            2 => "/status/404/gone".to_owned(),
            _ => format!("/ok/area-{index}"),
        };
        areas.push(
            env.area(&[("webhook", json!({"url": receiver.url(&path)}))])
                .await?
                .0,
        );
    }
    let port = free_port()?.to_string();
    let address = format!("127.0.0.1:{port}");
    let mut worker = WorkerProcess::start(
        &env,
        "metrics",
        &[("AREA_API_ADDR", &address), ("AREA_RETRY_BASE_MS", "100")],
    )
    .await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let base = format!("http://{address}");
    eventually(
        "the worker process to be ready",
        Duration::from_secs(60),
        || async {
            let ready = http.get(format!("{base}/readyz")).send().await;
            Ok(ready
                .is_ok_and(|response| response.status().is_success())
                .then_some(()))
        },
    )
    .await
    .with_context(|| format!("worker log: {}", worker.log()))?;

    let mut connection = env.redis.connection();
    let mut pipeline = redis::pipe();
    for index in 0..EVENTS {
        let event = json!({"id": format!("evt-{index}"), "area_id": areas[index % areas.len()]});
        pipeline
            .cmd("XADD")
            .arg(env.redis.keys().events())
            .arg("*")
            .arg("event")
            .arg(event.to_string())
            .ignore();
    }
    pipeline.query_async::<()>(&mut connection).await?;
    let rows = eventually(
        "every execution settled",
        Duration::from_secs(180),
        || async {
            let rows = env.store.oldest_executions(EVENTS as i64 + 1).await?;
            let settled = rows.len() == EVENTS && rows.iter().all(|row| row.status().is_terminal());
            Ok(settled.then_some(rows))
        },
    )
    .await?;

    let events = env.redis.keys().events();
    let count = |status| rows.iter().filter(|row| row.status() == status).count() as f64;
    let attempts: f64 = rows.iter().map(|row| f64::from(row.attempt)).sum();
    let expected = [
        ("area_events_read_total", vec![], EVENTS as f64),
        (
            "area_executions_total",
            vec![("service", "webhook"), ("status", "ok")],
            count(ExecutionStatus::Ok),
        ),
        (
            "area_executions_total",
            vec![("service", "webhook"), ("status", "failed")],
            count(ExecutionStatus::Failed),
        ),
        (
            "area_attempts_total",
            vec![("service", "webhook")],
            attempts,
        ),
        (
            "area_attempt_duration_seconds_count",
            vec![("service", "webhook")],
            attempts,
        ),
        (
            "area_retries_scheduled_total",
            vec![("service", "webhook")],
            attempts - EVENTS as f64,
        ),
        ("area_dead_letters_total", vec![], 0.0),
        ("area_in_flight", vec![], 0.0),
        (
            "area_stream_pending",
            vec![("stream", events.as_str())],
            0.0,
        ),
        ("area_stream_lag", vec![("stream", events.as_str())], 0.0),
        ("area_retry_schedule_size", vec![], 0.0),
    ];
    // The recorder counts a batch right after acknowledging it, a moment after
    // its rows are written: poll until the counters catch up.
    let scraped = eventually(
        "metrics to agree with PostgreSQL",
        Duration::from_secs(10),
        || async {
            let text = http
                .get(format!("{base}/metrics"))
                .send()
                .await?
                .text()
                .await?;
            let samples = parse_samples(&text);
            let agree = expected
                .iter()
                .all(|(name, labels, value)| total(&samples, name, labels) == *value);
            Ok(agree.then_some(text))
        },
    )
    .await;
    let status = worker.terminate(Duration::from_secs(30)).await?;

    let text = match scraped {
        Ok(text) => text,
        Err(error) => {
            let text = http.get(format!("{base}/metrics")).send().await.ok();
            let samples = match text {
                Some(response) => parse_samples(&response.text().await.unwrap_or_default()),
                None => Vec::new(),
            };
            let report: Vec<String> = expected
                .iter()
                .map(|(name, labels, value)| {
                    format!(
                        "{name}{labels:?}: expected {value}, got {}",
                        total(&samples, name, labels)
                    )
                })
                .collect();
            bail!("{error}\n{}", report.join("\n"));
        }
    };
    assert!(status.success(), "the worker exited with {status}");
    assert!(count(ExecutionStatus::Ok) > 0.0 && count(ExecutionStatus::Failed) > 0.0);
    assert!(attempts > EVENTS as f64, "some executions were retried");
    assert!(
        text.contains("area_attempt_duration_seconds_bucket{service=\"webhook\",le=\"0.1\"}"),
        "durations are a histogram:\n{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_driven_fuzzing_finds_no_server_error_and_no_undocumented_answer()
-> anyhow::Result<()> {
    const TOKEN: &str = "fuzz-token";
    const CHECKS: [&str; 4] = [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ];
    let version = tokio::process::Command::new("schemathesis")
        .arg("--version")
        .output()
        .await;
    if !version.is_ok_and(|output| output.status.success()) {
        bail!(
            "schemathesis is not installed; install it with `python3 -m pip install schemathesis` \
             (.ci/run does)"
        );
    }

    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[("webhook", json!({"url": receiver.url("/ok/fuzz")}))])
        .await?;
    let mut options = WorkerOptions::for_env(&env);
    options.config.api_token = Some(SecretString::from(TOKEN));
    let worker = TestWorker::start(options).await?;
    // Something to list: a few executions and a dead letter.
    for index in 0..3 {
        env.publish(&json!({"id": format!("evt-fuzz-{index}"), "area_id": area_id}))
            .await?;
    }
    env.publish(&json!({"area_id": Uuid::new_v4()})).await?;

    let scratch = std::env::temp_dir().join(format!("area-fuzz-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&scratch)?;
    let run = tokio::process::Command::new("schemathesis")
        .arg("run")
        .arg(format!("http://{}/api/openapi.json", worker.api_addr))
        // Beyond server errors: every status, content type and body the fuzzer
        // sees must be the ones the document declares.
        .arg("--checks")
        .arg(CHECKS.join(","))
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args([
            "--max-examples",
            "30",
            "--seed",
            "20261203",
            "--workers",
            "1",
        ])
        .args(["--request-timeout", "10", "--generation-database", "none"])
        .arg("--no-color")
        .current_dir(&scratch)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .context("schemathesis ran longer than 5 minutes")??;
    worker.stop().await?;
    let _ = std::fs::remove_dir_all(&scratch);

    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Shown with `--nocapture`: what the fuzzer covered.
    println!("{report}");
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}"
    );
    assert!(
        report.contains("passed") && !report.contains("No operations"),
        "schemathesis tested nothing:\n{report}"
    );
    Ok(())
}
