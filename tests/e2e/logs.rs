//! What the worker writes to its log: with `AREA_LOG_FORMAT=json`, one JSON
//! object per line; everything logged about a job carries that job's span
//! (execution, event, service); API requests are logged with their method,
//! path and status, never their bodies.

use std::time::Duration;

use area_e2e::process::free_port;
use area_e2e::{Receiver, TestEnv, WorkerProcess, eventually};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_job_span_and_request_logs_carry_no_body() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[("webhook", json!({"url": receiver.url("/status/404/gone")}))])
        .await?;
    let api_port = free_port()?;
    let api_addr = format!("127.0.0.1:{api_port}");
    let mut worker = WorkerProcess::start(
        &env,
        "json-logger",
        &[
            ("AREA_LOG_FORMAT", "json"),
            ("AREA_API_ADDR", api_addr.as_str()),
        ],
    )
    .await?;

    // A failure the engine logs at WARN, inside the job's span.
    env.publish(&json!({"id": "logged-1", "area_id": area_id, "payload": {}}))
        .await?;
    // A request whose body must not reach the log.
    let client = reqwest::Client::new();
    let marker = "body-text-that-must-not-be-logged";
    eventually(
        "the API to accept an event",
        Duration::from_secs(30),
        || async {
            let answer = client
                .post(format!("http://{api_addr}/api/events"))
                .json(&json!({"id": "logged-2", "area_id": area_id, "payload": {"note": marker}}))
                .send()
                .await;
            Ok(answer.ok().filter(|answer| answer.status().as_u16() == 202))
        },
    )
    .await?;

    eventually(
        "both failures to be logged",
        Duration::from_secs(30),
        || {
            let log = worker.log();
            async move {
                let failures = log
                    .lines()
                    .filter(|line| line.contains("reaction failed for good"))
                    .count();
                Ok((failures >= 2).then_some(log))
            }
        },
    )
    .await?;
    let status = worker.terminate(Duration::from_secs(20)).await?;
    assert!(status.success(), "the worker exits 0 on SIGTERM: {status}");
    let log = worker.log();

    let mut parsed = Vec::new();
    for line in log.lines().filter(|line| !line.trim().is_empty()) {
        let object: Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("a log line is not JSON ({error}): {line}"));
        assert!(object.get("level").is_some(), "no level: {line}");
        assert!(object.get("message").is_some(), "no message: {line}");
        parsed.push(object);
    }

    let failures: Vec<&Value> = parsed
        .iter()
        .filter(|line| line["message"] == "reaction failed for good")
        .collect();
    assert_eq!(failures.len(), 2, "one failure per event: {log}");
    let mut events = Vec::new();
    for failure in failures {
        let span = &failure["span"];
        assert_eq!(span["name"], "job", "{failure}");
        assert_eq!(span["service"], "webhook", "{failure}");
        assert!(
            span["execution_id"]
                .as_str()
                .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()),
            "{failure}"
        );
        assert_eq!(failure["code"], "http_404", "{failure}");
        events.push(span["event_id"].as_str().unwrap_or_default().to_owned());
    }
    events.sort();
    assert_eq!(events, ["logged-1", "logged-2"]);

    let request = parsed
        .iter()
        .find(|line| line["span"]["name"] == "request" && line["span"]["path"] == "/api/events")
        .unwrap_or_else(|| panic!("the publish request is logged: {log}"));
    assert_eq!(request["span"]["method"], "POST", "{request}");
    assert_eq!(request["status"], 202, "{request}");
    assert!(!log.contains(marker), "a request body reached the log");
    Ok(())
}

/// A reaction whose service no reaction crate provides (a typo such as
/// `webhok`) is reported once in the log, with the stream its executions wait
/// in; the executions themselves stay queued for a worker that serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reaction_naming_an_unknown_service_is_reported_once() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let (area_id, _) = env
        .area(&[("webhok", json!({"url": "http://127.0.0.1:9/hook"}))])
        .await?;
    let mut worker = WorkerProcess::start(&env, "typo-reporter", &[]).await?;

    for index in 0..3 {
        env.publish(&json!({"id": format!("typo-{index}"), "area_id": area_id, "payload": {}}))
            .await?;
    }
    for index in 0..3 {
        let event_id = format!("typo-{index}");
        eventually(
            "the execution row to be inserted",
            Duration::from_secs(30),
            || {
                let store = env.store.clone();
                let event_id = event_id.clone();
                async move {
                    let rows = store.executions_of_event(&event_id).await?;
                    Ok((rows.len() == 1).then_some(rows))
                }
            },
        )
        .await?;
    }
    let status = worker.terminate(Duration::from_secs(20)).await?;
    assert!(status.success(), "the worker exits 0 on SIGTERM: {status}");

    let log = worker.log();
    let reports: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("no reaction crate of this workspace provides"))
        .collect();
    assert_eq!(reports.len(), 1, "reported once, not per event: {log}");
    assert!(reports[0].contains("webhok"), "{}", reports[0]);
    assert!(reports[0].contains("jobs:webhok"), "{}", reports[0]);
    for index in 0..3 {
        let rows = env
            .store
            .executions_of_event(&format!("typo-{index}"))
            .await?;
        assert_eq!(rows[0].status, "queued", "left for a worker that serves it");
    }
    Ok(())
}
