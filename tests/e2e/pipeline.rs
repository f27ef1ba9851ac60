//! The main job: events in, webhook reactions run, executions recorded.

use std::time::Duration;

use area_e2e::{Receiver, TestEnv, TestWorker, WorkerOptions, eventually};
use area_store::{ExecutionRow, ExecutionStatus, NewArea, NewReaction};
use serde_json::json;
use uuid::Uuid;

const SETTLE: Duration = Duration::from_secs(20);

async fn settled(
    env: &TestEnv,
    event_id: &str,
    expected: usize,
) -> anyhow::Result<Vec<ExecutionRow>> {
    eventually(
        &format!("{expected} settled executions of {event_id}"),
        SETTLE,
        || async {
            let rows = env.store.executions_of_event(event_id).await?;
            let done = rows.len() == expected && rows.iter().all(|row| row.status().is_terminal());
            Ok(done.then_some(rows))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_with_two_webhook_reactions_gives_two_ok_rows_and_two_requests() -> anyhow::Result<()>
{
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, reaction_ids) = env
        .area(&[
            ("webhook", json!({"url": receiver.url("/ok/first")})),
            (
                "webhook",
                json!({"url": receiver.url("/ok/second/{{ payload.repo }}"), "method": "PUT"}),
            ),
        ])
        .await?;
    let worker = TestWorker::start(WorkerOptions::for_env(&env)).await?;

    env.publish(&json!({"id": "evt-two", "area_id": area_id, "payload": {"repo": "area"}}))
        .await?;
    let rows = settled(&env, "evt-two", 2).await?;
    worker.stop().await?;

    assert!(
        rows.iter().all(|row| row.status() == ExecutionStatus::Ok),
        "{rows:#?}"
    );
    assert!(rows.iter().all(|row| row.attempt == 1));
    let mut requests = receiver.requests();
    requests.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(requests.len(), 2, "one request per reaction");
    assert_eq!(requests[0].path, "/ok/first");
    assert_eq!(requests[0].method, "POST");
    assert_eq!(
        requests[1].path, "/ok/second/area",
        "the URL template was rendered"
    );
    assert_eq!(requests[1].method, "PUT");
    for (request, reaction_id) in requests.iter().zip(&reaction_ids) {
        assert_eq!(
            request.webhook_id.as_deref(),
            Some(format!("evt-two:{reaction_id}").as_str())
        );
    }
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body)?;
    assert_eq!(
        body["payload"]["repo"], "area",
        "the default body is the event"
    );
    let output = rows[0]
        .output_payload
        .as_ref()
        .expect("ok rows keep the response");
    assert_eq!(output["status"], 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_failing_twice_gives_one_ok_row_after_three_attempts_at_policy_pace()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[("webhook", json!({"url": receiver.url("/flaky/2/x")}))])
        .await?;
    let mut options = WorkerOptions::for_env(&env);
    options.config.retry_base_ms = 300;
    options.config.retry_cap_ms = 10_000;
    let worker = TestWorker::start(options).await?;

    env.publish(&json!({"id": "evt-flaky", "area_id": area_id}))
        .await?;
    let rows = settled(&env, "evt-flaky", 1).await?;
    worker.stop().await?;

    let row = &rows[0];
    assert_eq!(row.status(), ExecutionStatus::Ok, "{row:#?}");
    assert_eq!(row.attempt, 3);
    let attempts = row.attempts.as_array().expect("attempts is an array");
    let statuses: Vec<&str> = attempts
        .iter()
        .map(|attempt| attempt["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["retry", "retry", "ok"]);
    assert_eq!(attempts[0]["error"]["code"], "http_500");

    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    let first_wait = requests[1].at - requests[0].at;
    let second_wait = requests[2].at - requests[1].at;
    // The policy says 300 ms then 600 ms, each ±10%; the upper bounds leave room
    // for a loaded machine without accepting a schedule that ignores the policy.
    assert!(
        first_wait >= Duration::from_millis(270),
        "first retry came after {first_wait:?}"
    );
    assert!(
        first_wait < Duration::from_millis(2_000),
        "first retry came after {first_wait:?}"
    );
    assert!(
        second_wait >= Duration::from_millis(540),
        "second retry came after {second_wait:?}"
    );
    assert!(
        second_wait < Duration::from_millis(3_000),
        "second retry came after {second_wait:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_fails_after_one_attempt() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[("webhook", json!({"url": receiver.url("/status/404/gone")}))])
        .await?;
    let worker = TestWorker::start(WorkerOptions::for_env(&env)).await?;

    env.publish(&json!({"id": "evt-404", "area_id": area_id}))
        .await?;
    let rows = settled(&env, "evt-404", 1).await?;
    // Give a wrongly scheduled retry the time to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.stop().await?;

    assert_eq!(rows[0].status(), ExecutionStatus::Failed);
    assert_eq!(rows[0].attempt, 1);
    assert_eq!(rows[0].error.as_ref().unwrap()["code"], "http_404");
    assert_eq!(
        rows[0].error.as_ref().unwrap().get("retries_exhausted"),
        None,
        "a permanent failure had no retries to exhaust"
    );
    assert_eq!(receiver.count(), 1, "a permanent failure is not retried");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_that_ran_out_of_retries_says_so() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[(
            "webhook",
            json!({
                "url": receiver.url("/status/500/down"),
                "retry": {"max_retries": 2, "base_ms": 50},
            }),
        )])
        .await?;
    let worker = TestWorker::start(WorkerOptions::for_env(&env)).await?;

    env.publish(&json!({"id": "evt-exhausted", "area_id": area_id}))
        .await?;
    let rows = settled(&env, "evt-exhausted", 1).await?;
    worker.stop().await?;

    let row = &rows[0];
    assert_eq!(row.status(), ExecutionStatus::Failed, "{row:#?}");
    assert_eq!(
        row.attempt, 3,
        "the first attempt and two retries: {row:#?}"
    );
    let error = row.error.as_ref().expect("a failed row has an error");
    assert_eq!(error["code"], "http_500", "{row:#?}");
    assert_eq!(error["retries_exhausted"], true, "{row:#?}");
    assert_eq!(
        receiver.count(),
        3,
        "one request per attempt: {:#?} / {row:#?}",
        receiver.requests()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_event_published_twice_gives_one_row_per_reaction() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[
            ("webhook", json!({"url": receiver.url("/ok/a")})),
            ("webhook", json!({"url": receiver.url("/ok/b")})),
        ])
        .await?;
    let worker = TestWorker::start(WorkerOptions::for_env(&env)).await?;

    let event = json!({"id": "evt-twice", "area_id": area_id});
    env.publish(&event).await?;
    env.publish(&event).await?;
    settled(&env, "evt-twice", 2).await?;
    // A marker published after both: once it is settled, both copies were read.
    env.publish(&json!({"id": "evt-marker", "area_id": area_id}))
        .await?;
    settled(&env, "evt-marker", 2).await?;
    worker.stop().await?;

    let rows = env.store.executions_of_event("evt-twice").await?;
    assert_eq!(rows.len(), 2, "one row per (event, reaction)");
    assert_eq!(
        env.pending(&env.redis.keys().events()).await?,
        0,
        "both copies acknowledged"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_reaction_or_area_runs_nothing() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (enabled_area, disabled_area) = (Uuid::new_v4(), Uuid::new_v4());
    let reaction = |area_id, path: &str, enabled| NewReaction {
        id: Uuid::new_v4(),
        area_id,
        service: "webhook".into(),
        config: json!({"url": receiver.url(path)}),
        enabled,
        position: 0,
    };
    env.insert(
        &[
            NewArea {
                id: enabled_area,
                name: "on".into(),
                enabled: true,
            },
            NewArea {
                id: disabled_area,
                name: "off".into(),
                enabled: false,
            },
        ],
        &[
            reaction(enabled_area, "/ok/enabled", true),
            reaction(enabled_area, "/ok/disabled-reaction", false),
            reaction(disabled_area, "/ok/disabled-area", true),
        ],
    )
    .await?;
    let worker = TestWorker::start(WorkerOptions::for_env(&env)).await?;

    env.publish(&json!({"id": "evt-off", "area_id": disabled_area}))
        .await?;
    env.publish(&json!({"id": "evt-on", "area_id": enabled_area}))
        .await?;
    settled(&env, "evt-on", 1).await?;
    worker.stop().await?;

    assert!(
        env.store.executions_of_event("evt-off").await?.is_empty(),
        "a disabled AREA runs nothing"
    );
    let paths: Vec<String> = receiver
        .requests()
        .into_iter()
        .map(|request| request.path)
        .collect();
    assert_eq!(paths, ["/ok/enabled"], "a disabled reaction runs nothing");
    assert_eq!(
        env.pending(&env.redis.keys().events()).await?,
        0,
        "both events acknowledged"
    );
    Ok(())
}

/// A reaction with a bug: it panics when its config says so.
struct Panicky;

#[async_trait::async_trait]
impl area_core::Reaction for Panicky {
    fn service(&self) -> &'static str {
        "panicky"
    }

    fn validate(&self, _config: &serde_json::Value) -> Result<(), area_core::ConfigError> {
        Ok(())
    }

    async fn execute(
        &self,
        context: &area_core::ReactionContext,
    ) -> Result<area_core::Outcome, area_core::ReactionError> {
        if context.config["panic"] == json!(true) {
            panic!("a bug in a reaction crate");
        }
        Ok(area_core::Outcome::new(json!({"fine": true})))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_reaction_fails_its_execution_and_the_worker_goes_on() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let (area_id, _) = env
        .area(&[
            ("panicky", json!({"panic": true})),
            ("panicky", json!({"panic": false})),
        ])
        .await?;
    let mut registry = area_core::Registry::new();
    registry.register(Panicky);
    let worker = TestWorker::start_with(WorkerOptions::for_env(&env).config, registry).await?;

    env.publish(&json!({"id": "bug", "area_id": area_id}))
        .await?;
    let rows = settled(&env, "bug", 2).await?;
    let failed: Vec<&ExecutionRow> = rows
        .iter()
        .filter(|row| row.status() == ExecutionStatus::Failed)
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "only the panicking reaction fails: {rows:?}"
    );
    assert_eq!(
        failed[0].error.as_ref().map(|error| error["code"].clone()),
        Some(json!("reaction_panicked"))
    );
    assert_eq!(failed[0].attempt, 1, "a panic is not retried");
    assert!(
        rows.iter().any(|row| row.status() == ExecutionStatus::Ok),
        "the other reaction of the event runs: {rows:?}"
    );
    eventually("the event acknowledged", SETTLE, || async {
        Ok((env.pending(&env.redis.keys().events()).await? == 0).then_some(()))
    })
    .await?;

    // The worker still runs events after the panic.
    env.publish(&json!({"id": "after", "area_id": area_id}))
        .await?;
    settled(&env, "after", 2).await?;
    worker.stop().await
}
