//! What a receiver gets: method, headers, body and the idempotency key, and
//! what the reaction keeps of its answer.

use area_core::Reaction;
use reaction_webhook::WebhookSettings;
use serde_json::{Value, json};

use crate::peers::{Receiver, Reply};
use crate::{DEDUP_KEY, context, event, loopback_reaction, reaction_with, settings};

#[tokio::test]
async fn posts_the_event_as_json_by_default() {
    let receiver = Receiver::start(Reply::new(200, "thanks")).await;
    let reaction = loopback_reaction();

    let outcome = reaction
        .execute(&context(
            json!({"url": receiver.url("/hooks/in?source=area")}),
        ))
        .await
        .expect("the webhook is delivered");

    assert_eq!(
        outcome.output,
        json!({"status": 200, "body": "thanks", "truncated": false})
    );
    let request = receiver.single_request();
    assert_eq!(request.method, "POST");
    assert_eq!(request.uri, "/hooks/in?source=area");
    assert_eq!(request.header("content-type"), "application/json");
    let body: Value = serde_json::from_slice(&request.body).expect("the body is JSON");
    assert_eq!(body, event().to_json());
    assert!(request.headers.get("webhook-signature").is_none());
    assert!(request.headers.get("webhook-timestamp").is_none());
}

#[tokio::test]
async fn sends_the_dedup_key_as_webhook_id_on_every_attempt() {
    let receiver = Receiver::start(Reply::new(204, "")).await;
    let reaction = loopback_reaction();
    let mut attempt = context(json!({"url": receiver.url("/")}));

    reaction.execute(&attempt).await.expect("first attempt");
    attempt.attempt = 2;
    reaction.execute(&attempt).await.expect("second attempt");

    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    for request in requests {
        assert_eq!(request.header("webhook-id"), DEDUP_KEY);
    }
}

#[tokio::test]
async fn sends_custom_method_headers_and_text_body_as_is() {
    let receiver = Receiver::start(Reply::new(201, "{\"id\": 7}")).await;
    let reaction = loopback_reaction();
    let body = "{\"text\": \"hello ada\"} not quite JSON";

    let outcome = reaction
        .execute(&context(json!({
            "url": receiver.url("/put"),
            "method": "PUT",
            "headers": {
                "X-Area-Trace": "t-123",
                "Authorization": "Bearer abc",
                "Content-Type": "application/vnd.area+json",
            },
            "body": body,
        })))
        .await
        .expect("the webhook is delivered");

    assert_eq!(outcome.output["status"], 201);
    assert_eq!(outcome.output["body"], "{\"id\": 7}");
    let request = receiver.single_request();
    assert_eq!(request.method, "PUT");
    assert_eq!(request.header("x-area-trace"), "t-123");
    assert_eq!(request.header("authorization"), "Bearer abc");
    assert_eq!(request.header("content-type"), "application/vnd.area+json");
    assert_eq!(request.header("webhook-id"), DEDUP_KEY);
    assert_eq!(request.body, body.as_bytes());
}

#[tokio::test]
async fn text_body_defaults_to_plain_text() {
    let receiver = Receiver::start(Reply::new(200, "")).await;
    let reaction = loopback_reaction();

    reaction
        .execute(&context(
            json!({"url": receiver.url("/"), "body": "plain words"}),
        ))
        .await
        .expect("the webhook is delivered");

    let request = receiver.single_request();
    assert_eq!(request.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(request.body, "plain words".as_bytes());
}

#[tokio::test]
async fn sends_a_json_body_as_json() {
    let receiver = Receiver::start(Reply::new(200, "")).await;
    let reaction = loopback_reaction();

    reaction
        .execute(&context(json!({
            "url": receiver.url("/"),
            "method": "patch",
            "body": [{"op": "replace", "path": "/name", "value": "ada"}],
        })))
        .await
        .expect("the webhook is delivered");

    let request = receiver.single_request();
    assert_eq!(request.method, "PATCH");
    assert_eq!(request.header("content-type"), "application/json");
    let body: Value = serde_json::from_slice(&request.body).expect("the body is JSON");
    assert_eq!(
        body,
        json!([{"op": "replace", "path": "/name", "value": "ada"}])
    );
}

#[tokio::test]
async fn get_and_delete_reach_the_receiver() {
    let receiver = Receiver::start(Reply::new(200, "ok")).await;
    let reaction = loopback_reaction();

    reaction
        .execute(&context(
            json!({"url": receiver.url("/ping"), "method": "GET"}),
        ))
        .await
        .expect("the GET is delivered");
    reaction
        .execute(&context(
            json!({"url": receiver.url("/item"), "method": "DELETE"}),
        ))
        .await
        .expect("the DELETE is delivered");

    let requests = receiver.requests();
    assert_eq!(requests[0].method, "GET");
    assert!(requests[0].body.is_empty(), "a GET carries no body");
    assert!(requests[0].headers.get("content-type").is_none());
    assert_eq!(requests[1].method, "DELETE");
    let body: Value = serde_json::from_slice(&requests[1].body).expect("the body is JSON");
    assert_eq!(
        body,
        event().to_json(),
        "a DELETE without body sends the event"
    );
}

#[tokio::test]
async fn keeps_a_capped_excerpt_cut_on_a_character_boundary() {
    let receiver = Receiver::start(Reply::new(200, &"é".repeat(100))).await;
    let reaction = reaction_with(WebhookSettings {
        max_response_bytes: 5,
        ..settings("127.0.0.1")
    });

    let outcome = reaction
        .execute(&context(json!({"url": receiver.url("/")})))
        .await
        .expect("the webhook is delivered");

    assert_eq!(
        outcome.output,
        json!({"status": 200, "body": "éé", "truncated": true})
    );
}

#[tokio::test]
async fn keeps_a_body_of_exactly_the_cap_whole() {
    let receiver = Receiver::start(Reply::new(200, "12345")).await;
    let reaction = reaction_with(WebhookSettings {
        max_response_bytes: 5,
        ..settings("127.0.0.1")
    });

    let outcome = reaction
        .execute(&context(json!({"url": receiver.url("/")})))
        .await
        .expect("the webhook is delivered");

    assert_eq!(
        outcome.output,
        json!({"status": 200, "body": "12345", "truncated": false})
    );
}

#[tokio::test]
async fn reuses_pooled_connections() {
    let receiver = Receiver::start(Reply::new(200, "ok")).await;
    let reaction = loopback_reaction();

    for _ in 0..20 {
        reaction
            .execute(&context(json!({"url": receiver.url("/")})))
            .await
            .expect("the webhook is delivered");
    }

    let requests = receiver.requests();
    assert_eq!(requests.len(), 20);
    let first_peer = requests[0].peer;
    assert!(
        requests.iter().all(|request| request.peer == first_peer),
        "sequential webhooks to one receiver share one keep-alive connection"
    );
}

#[tokio::test]
async fn validate_names_the_wrong_field() {
    let reaction = loopback_reaction();

    assert_eq!(reaction.service(), "webhook");
    assert!(
        reaction
            .validate(&json!({"url": "https://hooks.example/in", "retry": {"max": 2}}))
            .is_ok()
    );
    let error = reaction
        .validate(&json!({"url": "https://hooks.example/in", "metod": "PUT"}))
        .unwrap_err();
    assert_eq!(error.field, "metod");
    let error = reaction
        .validate(&json!({"url": "https://hooks.example/in", "headers": {"X-Bad": "a\nb"}}))
        .unwrap_err();
    assert_eq!(error.field, "headers.X-Bad");
}

#[tokio::test]
async fn invalid_config_is_permanent_and_sends_nothing() {
    let receiver = Receiver::start(Reply::new(200, "")).await;
    let reaction = loopback_reaction();

    let error = crate::expect_error(
        reaction
            .execute(&context(
                json!({"url": receiver.url("/"), "timeout_ms": "soon"}),
            ))
            .await,
    );

    assert_eq!(error.code, "invalid_config");
    assert!(!error.is_transient());
    assert!(error.message.contains("timeout_ms"), "{}", error.message);
    assert!(receiver.requests().is_empty());
}
