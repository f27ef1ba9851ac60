//! The webhook reaction against area-core's conformance kit, with the loopback
//! peers of the integration tests: an axum receiver answering as each case
//! needs, a closed port, and a server that reads the request and never answers.

// The integration tests use more of the peers than this file does.
#[allow(dead_code)]
#[path = "it/peers.rs"]
mod peers;

use std::time::Duration;

use area_core::testkit::{Conformance, Failure, Hang, HangResult};
use reaction_webhook::{WebhookReaction, WebhookSettings, parse_allow_list};
use serde_json::{Value, json};

use crate::peers::{Receiver, Reply, closed_port, silent_server};

/// A Standard Webhooks signing secret (`whsec_` + base64).
const SIGNING_SECRET: &str = "whsec_Y29uZm9ybWFuY2Uta2l0LXNpZ25pbmcta2V5";
/// A secret that does not decode, which the config error must not quote.
const UNREADABLE_SECRET: &str = "whsec_not*base64*conformance";
/// A password inside a URL the config refuses.
const URL_PASSWORD: &str = "hunter2-in-the-url";

fn reaction(allow: &str) -> WebhookReaction {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = WebhookSettings {
        allow: parse_allow_list(allow).expect("the test allow-list parses"),
        timeout: Duration::from_secs(5),
        ..WebhookSettings::default()
    };
    WebhookReaction::new(settings).expect("the reaction builds")
}

#[tokio::test]
async fn webhook_reaction_conforms() {
    let receiver = Receiver::start(Reply::new(200, "accepted")).await;
    let unavailable = Receiver::start(Reply::new(503, "maintenance")).await;
    let missing = Receiver::start(Reply::new(404, "no such hook")).await;
    let limited = Receiver::start(Reply::new(429, "slow down").header("retry-after", "7")).await;
    let closed = closed_port().await;
    let silent = silent_server().await;
    let url = receiver.url("/");

    let report = Conformance::new(reaction("127.0.0.1"))
        .service("webhook")
        .invalid_config(json!({}), "url")
        .invalid_config(
            json!({"url": format!("ftp://area:{URL_PASSWORD}@example.com/")}),
            "url",
        )
        .invalid_config(json!({"url": url, "method": "FETCH"}), "method")
        .invalid_config(json!({"url": url, "secret": UNREADABLE_SECRET}), "secret")
        .invalid_config(
            json!({"url": url, "headers": {"authorization": "Bearer\nsplit"}}),
            "headers.authorization",
        )
        .invalid_config(json!({"url": url, "header": {}}), "header")
        .template(json!({
            "url": receiver.url("/hooks/{{ payload.repository }}"),
            "headers": {"x-pusher": "{{ payload.user.name }}"},
            "body": {"text": "{{ payload.count }} commits by {{ payload.user.email }}"},
            "secret": SIGNING_SECRET,
        }))
        .failure(
            Failure::retryable(
                "server unavailable",
                json!({"url": unavailable.url("/")}),
                "http_503",
            )
            .possible_duplicate(false),
        )
        .failure(Failure::permanent(
            "unknown hook",
            json!({"url": missing.url("/")}),
            "http_404",
        ))
        .failure(Failure::rate_limited(
            "rate limited",
            json!({"url": limited.url("/")}),
            "http_429",
            Some(Duration::from_secs(7)),
        ))
        .failure(Failure::retryable(
            "connection refused",
            json!({"url": format!("http://{closed}/"), "secret": SIGNING_SECRET}),
            "connect",
        ))
        .failure(
            Failure::permanent(
                "loopback not allowed",
                json!({"url": url, "secret": SIGNING_SECRET}),
                "blocked_destination",
            )
            .on(reaction("")),
        )
        .hang(Hang::new(
            json!({"url": format!("http://{silent}/"), "secret": SIGNING_SECRET}),
        ))
        .secret(SIGNING_SECRET)
        .secret(UNREADABLE_SECRET)
        .secret(URL_PASSWORD)
        .run()
        .await;

    // Only the template case reached this receiver: invalid configs and the
    // blocked destination were refused before any request.
    let request = receiver.single_request();
    assert_eq!(request.uri.path(), "/hooks/area");
    assert_eq!(request.header("x-pusher"), "Ada");
    assert!(request.header("webhook-signature").starts_with("v1,"));
    let body: Value = serde_json::from_slice(&request.body).expect("a JSON body");
    assert_eq!(body, json!({"text": "3 commits by ada@example.com"}));
    assert_eq!(
        report
            .template_outcome
            .expect("the template case ran")
            .output["status"],
        200
    );

    match report.hang {
        // Returning at all means within the kit's 1 s attempt timeout plus its
        // 1 s grace, long before the reaction's own 5 s timeout: it honoured
        // the attempt's deadline. No wall-clock bound beyond the kit's.
        Some(HangResult::Returned { error, .. }) => {
            assert_eq!(error.code, "timeout", "{error:?}");
            assert!(error.possible_duplicate, "the request may have arrived");
        }
        other => panic!("the webhook ends its own attempt before the engine must: {other:?}"),
    }
}
