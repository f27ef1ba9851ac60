//! How answers and failures are classified, and how long an attempt may last
//! against receivers that misbehave.

use std::time::{Duration, Instant};

use area_core::{ErrorClass, Reaction};
use reaction_webhook::WebhookSettings;
use serde_json::json;

use crate::peers::{
    Receiver, Reply, closed_port, endless_body_server, silent_server, trickling_server,
};
use crate::{context, expect_error, loopback_reaction, reaction_with, settings};

async fn error_for(reply: Reply) -> area_core::ReactionError {
    let receiver = Receiver::start(reply).await;
    let reaction = loopback_reaction();
    let error = expect_error(
        reaction
            .execute(&context(json!({"url": receiver.url("/")})))
            .await,
    );
    assert_eq!(
        receiver.requests().len(),
        1,
        "the receiver was reached once"
    );
    error
}

#[tokio::test]
async fn server_errors_and_408_are_retryable() {
    for status in [500, 503, 408] {
        let error = error_for(Reply::new(status, "try later")).await;
        assert_eq!(error.class, ErrorClass::Retryable, "{status}");
        assert_eq!(error.code, format!("http_{status}"));
        assert!(error.message.contains("try later"), "{}", error.message);
        assert!(!error.possible_duplicate);
    }
}

#[tokio::test]
async fn client_errors_are_permanent() {
    for status in [404, 400] {
        let error = error_for(Reply::new(status, "no such hook")).await;
        assert_eq!(error.class, ErrorClass::Permanent, "{status}");
        assert_eq!(error.code, format!("http_{status}"));
    }
}

#[tokio::test]
async fn too_many_requests_is_rate_limited_with_retry_after_seconds() {
    let error = error_for(Reply::new(429, "slow down").header("retry-after", "3")).await;
    assert_eq!(error.code, "http_429");
    assert_eq!(
        error.class,
        ErrorClass::RateLimited {
            retry_after: Some(Duration::from_secs(3))
        }
    );
}

#[tokio::test]
async fn too_many_requests_reads_an_http_date() {
    let in_a_minute = std::time::SystemTime::now() + Duration::from_secs(60);
    let date = httpdate::fmt_http_date(in_a_minute);
    let error = error_for(Reply::new(429, "").header("retry-after", &date)).await;
    let ErrorClass::RateLimited {
        retry_after: Some(retry_after),
    } = error.class
    else {
        panic!("expected a rate limit with a delay, got {:?}", error.class);
    };
    assert!(
        (Duration::from_secs(55)..=Duration::from_secs(60)).contains(&retry_after),
        "{retry_after:?}"
    );
}

#[tokio::test]
async fn too_many_requests_ignores_garbage_retry_after() {
    let error = error_for(Reply::new(429, "").header("retry-after", "whenever")).await;
    assert_eq!(error.class, ErrorClass::RateLimited { retry_after: None });
}

#[tokio::test]
async fn redirects_are_permanent_and_not_followed() {
    let target = Receiver::start(Reply::new(200, "you should not be here")).await;
    let error = error_for(Reply::new(302, "").header("location", &target.url("/elsewhere"))).await;

    assert_eq!(error.class, ErrorClass::Permanent);
    assert_eq!(error.code, "http_302");
    assert!(
        error.message.contains(&target.url("/elsewhere")),
        "{}",
        error.message
    );
    assert!(
        target.requests().is_empty(),
        "the redirect target was never hit"
    );
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    let address = closed_port().await;
    let reaction = loopback_reaction();

    let error = expect_error(
        reaction
            .execute(&context(json!({"url": format!("http://{address}/")})))
            .await,
    );

    assert_eq!(error.class, ErrorClass::Retryable);
    assert_eq!(error.code, "connect");
    assert!(!error.possible_duplicate, "nothing was sent");
    assert!(error.message.contains("127.0.0.1"), "{}", error.message);
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out() {
    let address = silent_server().await;
    let reaction = loopback_reaction();
    let started = Instant::now();

    let error = expect_error(
        reaction
            .execute(&context(
                json!({"url": format!("http://{address}/"), "timeout_ms": 300}),
            ))
            .await,
    );

    assert_eq!(error.class, ErrorClass::Retryable);
    assert_eq!(error.code, "timeout");
    assert!(error.possible_duplicate, "the request may have arrived");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_attempt_timeout_bounds_the_configured_one() {
    let address = silent_server().await;
    let reaction = loopback_reaction();
    let mut attempt = context(json!({"url": format!("http://{address}/"), "timeout_ms": 60_000}));
    attempt.timeout = Duration::from_millis(300);
    let started = Instant::now();

    let error = expect_error(reaction.execute(&attempt).await);

    assert_eq!(error.code, "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_settings_timeout_applies_without_timeout_ms() {
    let address = silent_server().await;
    let reaction = reaction_with(WebhookSettings {
        timeout: Duration::from_millis(300),
        ..settings("127.0.0.1")
    });
    let started = Instant::now();

    let error = expect_error(
        reaction
            .execute(&context(json!({"url": format!("http://{address}/")})))
            .await,
    );

    assert_eq!(error.code, "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_endless_body_is_read_up_to_the_cap() {
    let address = endless_body_server().await;
    let reaction = reaction_with(WebhookSettings {
        max_response_bytes: 10_000,
        ..settings("127.0.0.1")
    });
    let started = Instant::now();

    let outcome = reaction
        .execute(&context(json!({"url": format!("http://{address}/")})))
        .await
        .expect("a 200 is delivered whatever its body");

    assert_eq!(outcome.output["status"], 200);
    assert_eq!(outcome.output["truncated"], true);
    assert_eq!(outcome.output["body"], "a".repeat(10_000));
    assert!(
        outcome.output.get("body_error").is_none(),
        "{}",
        outcome.output
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_trickling_body_stops_at_the_deadline() {
    let address = trickling_server().await;
    let reaction = loopback_reaction();
    let started = Instant::now();

    let outcome = reaction
        .execute(&context(
            json!({"url": format!("http://{address}/"), "timeout_ms": 500}),
        ))
        .await
        .expect("a 200 is delivered even if its body is slow");

    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(outcome.output["status"], 200);
    assert_eq!(outcome.output["truncated"], true);
    assert_eq!(outcome.output["body_error"], "timeout");
    let body = outcome.output["body"].as_str().expect("the body is text");
    assert!(!body.is_empty() && body.len() < 100, "{body:?}");
}
