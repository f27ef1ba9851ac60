//! What a successful post sends and records.

use area_core::Reaction;
use serde_json::json;

use crate::fake_slack::{FakeSlack, POSTED_TS};
use crate::{TOKEN, context, reaction};

#[tokio::test]
async fn posts_channel_text_blocks_and_thread_with_the_bearer_token() {
    let slack = FakeSlack::start(TOKEN).await;
    let reaction = reaction(&slack.api_url);
    // An unknown field inside a block must survive: blocks are passed through.
    let blocks = json!([
        {"type": "section", "block_id": "b1", "text": {"type": "mrkdwn", "text": "*deployed*"}},
        {"type": "future_block", "payload": {"nested": [1, 2, 3]}},
    ]);
    let config = json!({
        "channel": "C0123456",
        "text": "deployed ✅",
        "blocks": blocks,
        "thread_ts": "1712340000.000200",
        "retry": {"max_retries": 5},
    });

    let outcome = reaction
        .execute(&context(config))
        .await
        .expect("the post succeeds");

    let request = slack.single_request();
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let content_type = request.content_type.as_deref().unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(request.body["channel"], "C0123456");
    assert_eq!(request.body["text"], "deployed ✅");
    assert_eq!(
        request.body["blocks"], blocks,
        "blocks reach slack untouched"
    );
    assert_eq!(request.body["thread_ts"], "1712340000.000200");
    assert_eq!(
        request.body["metadata"],
        json!({"event_type": "area_execution", "event_payload": {"dedup_key": "evt-1:reaction-1"}}),
    );
    assert!(
        request.body.get("retry").is_none(),
        "the engine's retry key is not sent"
    );

    assert_eq!(
        outcome.output,
        json!({
            "channel": "C0123456",
            "ts": POSTED_TS,
            "thread_ts": "1712340000.000200",
            "truncated": false,
        })
    );
}

#[tokio::test]
async fn posts_blocks_without_text() {
    let slack = FakeSlack::start(TOKEN).await;
    let config = json!({"channel": "C1", "blocks": [{"type": "divider"}]});

    let outcome = reaction(&slack.api_url)
        .execute(&context(config))
        .await
        .unwrap();

    let request = slack.single_request();
    assert!(request.body.get("text").is_none(), "{:?}", request.body);
    assert!(
        request.body.get("thread_ts").is_none(),
        "{:?}",
        request.body
    );
    assert_eq!(request.body["blocks"], json!([{"type": "divider"}]));
    assert_eq!(outcome.output["ts"], POSTED_TS);
    assert_eq!(outcome.output["channel"], "C1");
}

#[tokio::test]
async fn long_multibyte_text_arrives_cut_to_forty_thousand_characters() {
    let slack = FakeSlack::start(TOKEN).await;
    let config = json!({"channel": "C1", "text": "東".repeat(50_000)});

    let outcome = reaction(&slack.api_url)
        .execute(&context(config))
        .await
        .unwrap();

    // The fake decoded the body as UTF-8 and JSON, so no character was split.
    let text = slack.single_request().body["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(text.chars().count(), 40_000);
    assert!(text.chars().all(|character| character == '東'));
    assert_eq!(outcome.output["truncated"], true);
}

#[tokio::test]
async fn text_at_the_limit_is_sent_whole() {
    let slack = FakeSlack::start(TOKEN).await;
    let config = json!({"channel": "C1", "text": "é".repeat(40_000)});

    let outcome = reaction(&slack.api_url)
        .execute(&context(config))
        .await
        .unwrap();

    let text = slack.single_request().body["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(text.chars().count(), 40_000);
    assert_eq!(outcome.output["truncated"], false);
}

#[tokio::test]
async fn invalid_config_fails_permanently_without_calling_slack() {
    let slack = FakeSlack::start(TOKEN).await;
    let reaction = reaction(&slack.api_url);
    let config = json!({"channel": "C1", "text": "hi", "thread": "1712340000.000200"});

    let validated = reaction.validate(&config);
    let error = reaction.execute(&context(config)).await.unwrap_err();

    assert_eq!(validated.unwrap_err().field, "thread");
    assert_eq!(error.code, "invalid_config");
    assert!(!error.is_transient());
    assert!(error.message.contains("`thread`"), "{}", error.message);
    assert!(slack.received().is_empty(), "nothing may be sent");
}

#[tokio::test]
async fn service_name_is_slack_and_debug_hides_the_token() {
    let reaction = reaction("http://127.0.0.1:9/api/");
    assert_eq!(reaction.service(), "slack");
    let printed = format!("{reaction:?}");
    assert!(!printed.contains(TOKEN), "{printed}");
    assert!(printed.contains("127.0.0.1:9"), "{printed}");
}
