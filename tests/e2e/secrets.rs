//! No configured secret ever leaves the worker: a full run with every kind of
//! secret configured (SMTP password, Slack token, a webhook signing secret and
//! the API token), failures included, and then a search of the worker's debug
//! logs, every API answer and the stored executions for each secret.

use std::time::Duration;

use area_e2e::process::free_port;
use area_e2e::{FakeSlack, Receiver, SmtpSink, TestEnv, WorkerProcess, eventually};
use area_store::ExecutionStatus;
use serde_json::json;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_configured_secret_appears_in_logs_api_answers_or_stored_executions()
-> anyhow::Result<()> {
    let smtp_password = format!("smtp-pass-{}", Uuid::new_v4().simple());
    let slack_token = format!("xoxb-{}", Uuid::new_v4().simple());
    let wrong_slack_token = format!("xoxb-wrong-{}", Uuid::new_v4().simple());
    let webhook_secret = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw==";
    let api_token = format!("api-token-{}", Uuid::new_v4().simple());
    let secrets = [
        smtp_password.as_str(),
        slack_token.as_str(),
        webhook_secret,
        api_token.as_str(),
    ];

    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let sink = SmtpSink::start().await?;
    let slack = FakeSlack::start(&slack_token).await?;
    let (area_id, _) = env
        .area(&[
            (
                "webhook",
                json!({"url": receiver.url("/ok/signed"), "secret": webhook_secret}),
            ),
            (
                "webhook",
                json!({"url": receiver.url("/status/401/refused"), "secret": webhook_secret}),
            ),
            (
                "email",
                json!({"to": "ops@area.test", "subject": "s", "text": "t"}),
            ),
            ("slack", json!({"channel": "#ops", "text": "hello"})),
        ])
        .await?;
    let api_port = free_port()?;
    let api_addr = format!("127.0.0.1:{api_port}");
    let smtp_port = sink.port.to_string();
    let slack_url = slack.api_url();
    let mut worker = WorkerProcess::start(
        &env,
        "secretive",
        &[
            ("RUST_LOG", "debug"),
            ("AREA_API_ADDR", api_addr.as_str()),
            ("AREA_API_TOKEN", api_token.as_str()),
            ("AREA_SMTP_HOST", "127.0.0.1"),
            ("AREA_SMTP_PORT", smtp_port.as_str()),
            ("AREA_SMTP_TLS", "none"),
            ("AREA_SMTP_FROM", "area@area.test"),
            ("AREA_SMTP_USERNAME", "area"),
            ("AREA_SMTP_PASSWORD", smtp_password.as_str()),
            ("AREA_SLACK_TOKEN", slack_token.as_str()),
            ("AREA_SLACK_API_URL", slack_url.as_str()),
        ],
    )
    .await?;

    for index in 0..10 {
        env.publish(
            &json!({"id": format!("secret-{index}"), "area_id": area_id, "payload": {"n": index}}),
        )
        .await?;
    }
    eventually(
        "every execution to settle",
        Duration::from_secs(60),
        || async {
            let counts = env.store.count_by_status().await?;
            let settled: i64 = counts
                .iter()
                .filter(|(status, _)| status.is_terminal())
                .map(|(_, n)| n)
                .sum();
            Ok((settled == 40).then_some(()))
        },
    )
    .await?;

    // The secrets were really in use.
    let signed = receiver.requests_to("/ok/signed");
    assert!(
        signed
            .iter()
            .all(|request| request.headers.contains_key("webhook-signature"))
    );
    let expected_auth = format!("Bearer {slack_token}");
    assert!(
        slack
            .posts()
            .iter()
            .all(|post| post.authorization.as_deref() == Some(expected_auth.as_str()))
    );

    let client = reqwest::Client::new();
    let base = format!("http://{api_addr}");
    let mut answers = Vec::new();
    let paused = client
        .post(format!("{base}/api/worker/pause"))
        .bearer_auth(&api_token)
        .send()
        .await?;
    assert!(
        paused.status().is_success(),
        "the token is accepted: {}",
        paused.status()
    );
    answers.push(paused.text().await?);
    // A wrong token is refused without echoing either token.
    let refused = client
        .post(format!("{base}/api/worker/resume"))
        .bearer_auth(&wrong_slack_token)
        .send()
        .await?;
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
    let refused_body = refused.text().await?;
    assert!(!refused_body.contains(&wrong_slack_token));
    answers.push(refused_body);
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/openapi.json",
        "/api/worker/status",
        "/api/worker/statistics",
        "/api/worker/stream-info",
        "/api/executions?limit=100",
        "/api/dead-letters",
    ] {
        answers.push(
            client
                .get(format!("{base}{path}"))
                .send()
                .await?
                .text()
                .await?,
        );
    }
    let rows = env.store.oldest_executions(100).await?;
    for row in &rows {
        answers.push(
            client
                .get(format!("{base}/api/executions/{}", row.id))
                .send()
                .await?
                .text()
                .await?,
        );
    }
    let status = worker.terminate(Duration::from_secs(30)).await?;
    assert!(status.success());

    let stored = serde_json::to_string(&rows)?;
    let log = worker.log();
    assert!(log.contains("DEBUG"), "the worker logged at debug level");
    for secret in secrets {
        assert!(
            !log.contains(secret),
            "a secret appears in the worker's log ({})",
            worker.log_path.display()
        );
        for answer in &answers {
            assert!(
                !answer.contains(secret),
                "a secret appears in an API answer: {answer}"
            );
        }
        assert!(
            !stored.contains(secret),
            "a secret appears in a stored execution"
        );
    }
    assert!(
        rows.iter()
            .any(|row| row.status() == ExecutionStatus::Failed),
        "failure paths were exercised"
    );
    Ok(())
}
