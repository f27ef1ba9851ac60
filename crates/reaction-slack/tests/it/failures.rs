//! How every kind of failure at the wire is classified.

use std::time::{Duration, Instant};

use area_core::{ErrorClass, Reaction, ReactionError};
use reaction_slack::SlackReaction;
use serde_json::json;
use tokio::net::TcpListener;

use crate::fake_slack::{FakeSlack, Reply};
use crate::{TOKEN, context, reaction, settings};

async fn post(reaction: &SlackReaction) -> ReactionError {
    let config = json!({"channel": "C1", "text": "hello"});
    reaction
        .execute(&context(config))
        .await
        .expect_err("the post must fail")
}

#[tokio::test]
async fn slack_error_codes_keep_their_name_and_class() {
    let slack = FakeSlack::start(TOKEN).await;
    let reaction = reaction(&slack.api_url);
    let permanent = [
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
    ];
    let retryable = [
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
    ];

    for code in permanent {
        slack.set_reply(Reply::SlackError(code.into()));
        let error = post(&reaction).await;
        assert_eq!(error.class, ErrorClass::Permanent, "{code}: {error:?}");
        assert_eq!(error.code, code);
    }
    for code in retryable {
        slack.set_reply(Reply::SlackError(code.into()));
        let error = post(&reaction).await;
        assert_eq!(error.class, ErrorClass::Retryable, "{code}: {error:?}");
        assert_eq!(error.code, code);
    }
    slack.set_reply(Reply::SlackError("ratelimited".into()));
    let error = post(&reaction).await;
    assert_eq!(
        error.class,
        ErrorClass::RateLimited { retry_after: None },
        "{error:?}"
    );
    assert_eq!(
        slack.received().len(),
        permanent.len() + retryable.len() + 1
    );
}

#[tokio::test]
async fn http_429_is_rate_limited_with_the_servers_retry_after() {
    let slack = FakeSlack::start(TOKEN).await;
    let reaction = reaction(&slack.api_url);
    let seven_seconds = ErrorClass::RateLimited {
        retry_after: Some(Duration::from_secs(7)),
    };

    slack.set_reply(Reply::RateLimited {
        retry_after_secs: 7,
    });
    let error = post(&reaction).await;
    assert_eq!(error.class, seven_seconds, "{error:?}");
    assert_eq!(error.code, "ratelimited");

    slack.set_reply(Reply::RateLimitedPlain {
        retry_after_secs: 7,
    });
    let error = post(&reaction).await;
    assert_eq!(error.class, seven_seconds, "{error:?}");
    assert_eq!(error.code, "http_429");

    assert_eq!(
        slack.received().len(),
        2,
        "the client must not retry by itself"
    );
}

#[tokio::test]
async fn http_5xx_is_retryable_and_other_statuses_permanent() {
    let slack = FakeSlack::start(TOKEN).await;
    let reaction = reaction(&slack.api_url);

    for status in [500, 502, 503] {
        slack.set_reply(Reply::Status(status));
        let error = post(&reaction).await;
        assert_eq!(error.class, ErrorClass::Retryable, "{status}: {error:?}");
        assert_eq!(error.code, format!("http_{status}"));
    }
    slack.set_reply(Reply::Status(404));
    let error = post(&reaction).await;
    assert_eq!(error.class, ErrorClass::Permanent, "{error:?}");
    assert_eq!(error.code, "http_404");
}

#[tokio::test]
async fn reply_without_ok_is_retryable_never_a_success() {
    let slack = FakeSlack::start(TOKEN).await;
    slack.set_reply(Reply::WithoutOk);

    let error = post(&reaction(&slack.api_url)).await;

    assert_eq!(error.class, ErrorClass::Retryable, "{error:?}");
    assert_eq!(error.code, "invalid_reply");
}

#[tokio::test]
async fn ok_false_without_error_code_is_not_a_success() {
    let slack = FakeSlack::start(TOKEN).await;
    slack.set_reply(Reply::OkFalseWithoutError);

    let error = post(&reaction(&slack.api_url)).await;

    assert_eq!(error.class, ErrorClass::Retryable, "{error:?}");
    assert_eq!(error.code, "invalid_reply");
}

#[tokio::test]
async fn wrong_token_is_a_permanent_invalid_auth() {
    let slack = FakeSlack::start(TOKEN).await;
    let reaction = SlackReaction::new(settings(&slack.api_url, "xoxb-wrong-token")).unwrap();

    let error = post(&reaction).await;

    assert_eq!(error.class, ErrorClass::Permanent, "{error:?}");
    assert_eq!(error.code, "invalid_auth");
    let request = slack.single_request();
    assert_eq!(
        request.authorization.as_deref(),
        Some("Bearer xoxb-wrong-token")
    );
}

#[tokio::test]
async fn errors_never_contain_the_token_even_when_the_server_echoes_it() {
    let slack = FakeSlack::start(TOKEN).await;
    slack.set_reply(Reply::EchoAuthorization);

    let error = post(&reaction(&slack.api_url)).await;

    let printed = format!(
        "{error} {error:?} {}",
        serde_json::to_string(&error).unwrap()
    );
    assert!(!printed.contains(TOKEN), "{printed}");
    assert!(printed.contains("[redacted]"), "{printed}");
}

#[tokio::test]
async fn refused_connection_is_retryable() {
    // A port that was just free: nothing listens there any more.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let reaction = reaction(&format!("http://{address}/api/"));

    let error = post(&reaction).await;

    assert_eq!(error.class, ErrorClass::Retryable, "{error:?}");
    assert_eq!(error.code, "connection_failed");
    assert!(!error.possible_duplicate, "nothing was sent: {error:?}");
    assert!(!error.message.contains(TOKEN));
}

#[tokio::test]
async fn hanging_server_times_out_as_retryable() {
    let slack = FakeSlack::start(TOKEN).await;
    slack.set_reply(Reply::Hang);
    let mut settings = settings(&slack.api_url, TOKEN);
    settings.timeout = Duration::from_millis(300);
    let reaction = SlackReaction::new(settings).unwrap();

    let started = Instant::now();
    let error = post(&reaction).await;

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(error.class, ErrorClass::Retryable, "{error:?}");
    assert_eq!(error.code, "timeout");
    assert!(
        error.possible_duplicate,
        "the request may have arrived: {error:?}"
    );
}

#[tokio::test]
async fn attempt_timeout_bounds_the_call_when_shorter() {
    let slack = FakeSlack::start(TOKEN).await;
    slack.set_reply(Reply::Hang);
    let reaction = reaction(&slack.api_url);
    let mut context = context(json!({"channel": "C1", "text": "hello"}));
    context.timeout = Duration::from_millis(200);

    let started = Instant::now();
    let error = reaction.execute(&context).await.unwrap_err();

    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(error.code, "timeout");
}
