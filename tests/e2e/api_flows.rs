//! The API steering a running worker end to end: cancel an execution waiting
//! for a retry, retry a failed one by hand, pause and resume reading, and the
//! `area-worker status` report.

use std::time::Duration;

use area_e2e::{Receiver, TestEnv, TestWorker, WorkerOptions, eventually};
use area_store::{ExecutionRow, ExecutionStatus};
use secrecy::SecretString;
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(20);
const TOKEN: &str = "flows-token";

/// A client of one worker's API, with the bearer token.
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(worker: &TestWorker) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            base: format!("http://{}", worker.api_addr),
        })
    }

    async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        Ok((response.status().as_u16(), response.json().await?))
    }

    async fn post(&self, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        Ok((response.status().as_u16(), response.json().await?))
    }
}

/// Worker options with the test's token and a fast, short retry schedule.
fn options(env: &TestEnv, retry_base_ms: u64, retry_max: u32) -> WorkerOptions {
    let mut options = WorkerOptions::for_env(env);
    options.config.api_token = Some(SecretString::from(TOKEN));
    options.config.retry_base_ms = retry_base_ms;
    options.config.retry_cap_ms = retry_base_ms * 8;
    options.config.retry_max = retry_max;
    options
}

async fn only_row(env: &TestEnv, event_id: &str) -> anyhow::Result<Option<ExecutionRow>> {
    Ok(env
        .store
        .executions_of_event(event_id)
        .await?
        .into_iter()
        .next())
}

async fn row_in(
    env: &TestEnv,
    event_id: &str,
    status: ExecutionStatus,
    limit: Duration,
) -> anyhow::Result<ExecutionRow> {
    eventually(&format!("{event_id} in {status}"), limit, || async {
        Ok(only_row(env, event_id)
            .await?
            .filter(|row| row.status() == status))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_canceled_while_waiting_for_a_retry_is_never_attempted_again()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[("webhook", json!({"url": receiver.url("/status/500/down")}))])
        .await?;
    let worker = TestWorker::start(options(&env, 1_500, 20)).await?;
    let client = Client::new(&worker)?;

    env.publish(&json!({"id": "evt-cancel", "area_id": area_id}))
        .await?;
    let waiting = row_in(&env, "evt-cancel", ExecutionStatus::Retry, SETTLE).await?;
    let (status, body) = client
        .post(
            &format!("/api/executions/{}/cancel", waiting.id),
            Some(json!({"reason": "receiver is being replaced"})),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["previous_status"], "retry");

    // The retry was due 1.5 s (±10%) after the failure: wait well past it,
    // and past a scheduler sweep.
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    let row = only_row(&env, "evt-cancel").await?.unwrap();
    let (_, shown) = client.get(&format!("/api/executions/{}", row.id)).await?;
    worker.stop().await?;

    assert_eq!(row.status(), ExecutionStatus::Canceled, "{row:#?}");
    assert_eq!(row.attempt, 1, "no attempt after the cancel");
    assert_eq!(receiver.count(), 1, "the receiver was called once");
    assert_eq!(shown["error"]["message"], "receiver is being replaced");
    assert_eq!(shown["attempts"][0]["status"], "retry");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_execution_retried_by_hand_becomes_ok_once_the_receiver_recovers()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    // 500 to the first request, 200 afterwards; with no retries allowed the
    // first failure is final.
    let (area_id, _) = env
        .area(&[(
            "webhook",
            json!({"url": receiver.url("/flaky/1/recovering")}),
        )])
        .await?;
    let worker = TestWorker::start(options(&env, 200, 0)).await?;
    let client = Client::new(&worker)?;

    env.publish(&json!({"id": "evt-retry", "area_id": area_id}))
        .await?;
    let failed = row_in(&env, "evt-retry", ExecutionStatus::Failed, SETTLE).await?;
    assert_eq!(failed.attempt, 1);

    let (status, body) = client
        .post(&format!("/api/executions/{}/retry", failed.id), None)
        .await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["enqueued"], true);
    let ok = row_in(&env, "evt-retry", ExecutionStatus::Ok, SETTLE).await?;

    let (status, again) = client
        .post(&format!("/api/executions/{}/retry", failed.id), None)
        .await?;
    worker.stop().await?;

    assert_eq!(ok.attempt, 2, "the new attempt is attempt 2: {ok:#?}");
    let statuses: Vec<&str> = ok
        .attempts
        .as_array()
        .unwrap()
        .iter()
        .map(|attempt| attempt["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["failed", "ok"]);
    assert_eq!(receiver.count(), 2);
    assert_eq!(status, 409, "an ok execution is not retried: {again}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_worker_reads_nothing_and_everything_after_resume() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[("webhook", json!({"url": receiver.url("/ok/paused")}))])
        .await?;
    let worker = TestWorker::start(options(&env, 200, 20)).await?;
    let client = Client::new(&worker)?;

    let (status, body) = client.post("/api/worker/pause", None).await?;
    assert_eq!((status, &body["state"]), (200, &json!("paused")));
    // A read already blocked in Redis returns within AREA_BLOCK_MS (100 ms
    // here); after that no reader asks for entries.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for index in 0..5 {
        env.publish(&json!({"id": format!("evt-paused-{index}"), "area_id": area_id}))
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let events = env.redis.stream_info(&env.redis.keys().events()).await?;
    let group = &events.groups[0];
    assert_eq!(
        (group.lag, group.pending),
        (Some(5), 0),
        "nothing read while paused"
    );
    assert_eq!(env.store.count_by_status().await?, vec![]);
    assert_eq!(receiver.count(), 0);
    let (_, status_body) = client.get("/api/worker/status").await?;
    assert_eq!(status_body["state"], "paused");

    let (status, body) = client.post("/api/worker/resume", None).await?;
    assert_eq!((status, &body["state"]), (200, &json!("running")));
    eventually("5 executions ok after resume", SETTLE, || async {
        let ok = env
            .store
            .count_by_status()
            .await?
            .into_iter()
            .find(|(status, _)| *status == ExecutionStatus::Ok)
            .map_or(0, |(_, count)| count);
        Ok((ok == 5).then_some(()))
    })
    .await?;
    worker.stop().await?;
    assert_eq!(receiver.count(), 5);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_command_reports_a_running_worker() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[("webhook", json!({"url": receiver.url("/ok/status")}))])
        .await?;
    let options = options(&env, 200, 20);
    let consumer = options.config.consumer.clone().unwrap();
    let worker = TestWorker::start(options).await?;

    env.publish(&json!({"id": "evt-status", "area_id": area_id}))
        .await?;
    row_in(&env, "evt-status", ExecutionStatus::Ok, SETTLE).await?;
    let report =
        area_worker::api::client::status_report(&format!("http://{}", worker.api_addr)).await?;
    worker.stop().await?;

    assert!(report.contains(&consumer), "{report}");
    assert!(
        report.contains("state       running, 0 in flight"),
        "{report}"
    );
    assert!(
        report.contains(
            "executions  1 total: queued 0, running 0, ok 1, retry 0, failed 0, canceled 0"
        ),
        "{report}"
    );
    assert!(report.contains("  webhook   1 total"), "{report}");
    let unreachable = area_worker::api::client::status_report("http://127.0.0.1:1").await;
    assert!(
        unreachable.is_err_and(|error| format!("{error:#}").contains("is the worker running?"))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_worker_without_token_serves_curl_but_not_other_sites() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let worker = TestWorker::start(WorkerOptions::for_env(&env)).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let base = format!("http://{}", worker.api_addr);
    let state = || async {
        let status: Value = http
            .get(format!("{base}/api/worker/status"))
            .send()
            .await?
            .json()
            .await?;
        anyhow::Ok(status["state"].clone())
    };

    let curl_like = http.post(format!("{base}/api/worker/pause")).send().await?;
    assert_eq!(curl_like.status(), 200, "{}", curl_like.text().await?);
    assert_eq!(state().await?, "paused");

    let from_a_page = http
        .post(format!("{base}/api/worker/resume"))
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await?;
    assert_eq!(from_a_page.status(), 403);
    let body: Value = from_a_page.json().await?;
    assert_eq!(body["error"]["code"], "cross_site", "{body}");

    let rebound = http
        .post(format!("{base}/api/worker/resume"))
        .header("host", format!("evil.example:{}", worker.api_addr.port()))
        .send()
        .await?;
    assert_eq!(rebound.status(), 403);
    let body: Value = rebound.json().await?;
    assert_eq!(body["error"]["code"], "bad_host", "{body}");
    assert_eq!(state().await?, "paused", "neither refused request resumed");

    let plain_text = http
        .post(format!("{base}/api/events"))
        .header("content-type", "text/plain")
        .body(json!({"area_id": uuid::Uuid::new_v4()}).to_string())
        .send()
        .await?;
    assert_eq!(plain_text.status(), 415);

    let same_origin = http
        .post(format!("{base}/api/worker/resume"))
        .header("origin", base.as_str())
        .header("sec-fetch-site", "same-origin")
        .send()
        .await?;
    assert_eq!(same_origin.status(), 200);
    assert_eq!(state().await?, "running");
    worker.stop().await?;
    Ok(())
}
