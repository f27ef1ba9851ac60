//! The Slack reaction against area-core's conformance kit, with the fake Slack
//! Web API of the integration tests: one fake per case, each answering the way
//! that case needs (posted, `ok: false`, 429, 5xx, an echo of the token,
//! silence).

// The integration tests use more of the fake than this file does.
#[allow(dead_code)]
#[path = "it/fake_slack.rs"]
mod fake_slack;

use std::time::Duration;

use area_core::testkit::{Conformance, Failure, Hang, HangResult};
use reaction_slack::{SlackReaction, SlackSettings};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::fake_slack::{FakeSlack, Reply};

/// The bot token the fakes accept; it must never reach an error or output.
const TOKEN: &str = "xoxb-4242-conformance-T0kenValue";

/// A fake Slack answering `reply`, and a reaction talking to it.
async fn slack(reply: Reply) -> (FakeSlack, SlackReaction) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeSlack::start(TOKEN).await;
    fake.set_reply(reply);
    let mut settings = SlackSettings::new(SecretString::from(TOKEN));
    settings.api_url = fake.api_url.clone();
    settings.timeout = Duration::from_secs(5);
    let reaction = SlackReaction::new(settings).expect("the reaction builds");
    (fake, reaction)
}

fn post() -> Value {
    json!({"channel": "C1", "text": "hello"})
}

#[tokio::test]
async fn slack_reaction_conforms() {
    let (posted, reaction) = slack(Reply::Posted).await;
    let (_missing, missing_channel) = slack(Reply::SlackError("channel_not_found".into())).await;
    let (_internal, internal_error) = slack(Reply::SlackError("internal_error".into())).await;
    let (_outage, outage) = slack(Reply::Status(503)).await;
    let (_limited, limited) = slack(Reply::RateLimited {
        retry_after_secs: 7,
    })
    .await;
    let (_echo, echoes_token) = slack(Reply::EchoAuthorization).await;
    let (_silent, silent) = slack(Reply::Hang).await;

    let report = Conformance::new(reaction)
        .service("slack")
        .invalid_config(json!({"text": "hi"}), "channel")
        .invalid_config(json!({"channel": "C1"}), "text")
        .invalid_config(json!({"channel": "C1", "text": 5}), "text")
        .invalid_config(json!({"channel": "C1", "blocks": [1]}), "blocks.0")
        .invalid_config(
            json!({"channel": "C1", "text": "t", "token": TOKEN}),
            "token",
        )
        .template(json!({
            "channel": "{{ payload.repository }}-pushes",
            "text": "{{ payload.user.name }} pushed {{ payload.count }} commits",
        }))
        .failure(
            Failure::permanent("unknown channel", post(), "channel_not_found").on(missing_channel),
        )
        .failure(
            Failure::retryable("slack internal error", post(), "internal_error").on(internal_error),
        )
        .failure(Failure::retryable("slack outage", post(), "http_503").on(outage))
        .failure(
            Failure::rate_limited(
                "rate limited",
                post(),
                "ratelimited",
                Some(Duration::from_secs(7)),
            )
            .on(limited),
        )
        .failure(
            Failure::permanent("server echoes the token", post(), "Bearer [redacted]")
                .on(echoes_token),
        )
        .hang(Hang::new(post()).on(silent))
        .secret(TOKEN)
        .run()
        .await;

    let request = posted.single_request();
    assert_eq!(request.body["channel"], "area-pushes");
    assert_eq!(request.body["text"], "Ada pushed 3 commits");
    let output = report
        .template_outcome
        .expect("the template case ran")
        .output;
    assert_eq!(output["channel"], "area-pushes");

    match report.hang {
        Some(HangResult::Returned { error, .. }) => {
            assert_eq!(error.code, "timeout", "{error:?}");
            assert!(error.possible_duplicate, "the message may have been posted");
        }
        other => panic!("the reaction bounds its call by the attempt timeout: {other:?}"),
    }
}
