//! Events that cannot be processed go to the dead-letter stream with a reason,
//! are acknowledged, and hold nothing back.

use std::time::Duration;

use area_e2e::{Receiver, TestEnv, TestWorker, WorkerOptions, eventually};
use serde_json::json;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_are_dead_lettered_with_a_reason_and_valid_ones_still_run()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[("webhook", json!({"url": receiver.url("/ok/valid")}))])
        .await?;
    let worker = TestWorker::start(WorkerOptions::for_env(&env)).await?;

    let bad_json = env.publish_raw(&[("event", b"{not json")]).await?;
    let no_area = env
        .publish(&json!({"id": "no-area", "payload": {}}))
        .await?;
    let bad_area = env.publish(&json!({"area_id": "not-a-uuid"})).await?;
    let unknown_area = env.publish(&json!({"area_id": Uuid::new_v4()})).await?;
    let no_field = env.publish_raw(&[("other", b"x")]).await?;
    // An id too long for the dedup key's index, in the same batch as the valid
    // event: it must not take the batch down with it.
    let long_id = env
        .publish(&json!({"id": "x".repeat(8000), "area_id": area_id}))
        .await?;
    env.publish(&json!({"id": "evt-valid", "area_id": area_id}))
        .await?;

    eventually(
        "the valid event to run",
        Duration::from_secs(20),
        || async {
            let rows = env.store.executions_of_event("evt-valid").await?;
            Ok(rows
                .first()
                .filter(|row| row.status().is_terminal())
                .map(|_| ()))
        },
    )
    .await?;
    let dead = eventually("six dead letters", Duration::from_secs(10), || async {
        let dead = env.redis.dead_letters(None, 100).await?;
        Ok((dead.len() == 6).then_some(dead))
    })
    .await?;
    worker.stop().await?;

    let code_of = |entry_id: &str| {
        dead.iter()
            .find(|letter| letter.entry_id == entry_id)
            .map(|letter| (letter.code.as_str(), letter.reason.as_str()))
            .unwrap_or_else(|| panic!("no dead letter for {entry_id}: {dead:#?}"))
    };
    assert_eq!(code_of(&bad_json).0, "invalid_json");
    assert_eq!(
        code_of(&no_area),
        ("missing_field", "missing required field `area_id`")
    );
    assert_eq!(
        code_of(&bad_area),
        ("invalid_field", "field `area_id` is invalid: not a UUID")
    );
    assert_eq!(code_of(&unknown_area).0, "unknown_area");
    assert_eq!(code_of(&no_field).0, "missing_event_field");
    assert_eq!(
        code_of(&long_id),
        (
            "invalid_field",
            "field `id` is invalid: 8000 bytes long; at most 256"
        )
    );
    let original = dead
        .iter()
        .find(|letter| letter.entry_id == bad_json)
        .unwrap();
    assert_eq!(
        original.fields,
        [("event".to_owned(), "{not json".to_owned())],
        "original fields kept"
    );
    assert!(
        dead.iter()
            .all(|letter| letter.stream == env.redis.keys().events())
    );

    assert_eq!(
        env.pending(&env.redis.keys().events()).await?,
        0,
        "every entry acknowledged"
    );
    assert_eq!(receiver.requests_to("/ok/valid").len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_redrive_republishes_to_the_source_stream() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let area_id = Uuid::new_v4();
    let worker = TestWorker::start(WorkerOptions::for_env(&env)).await?;

    // The AREA does not exist yet: the event is dead-lettered.
    env.publish(&json!({"id": "evt-later", "area_id": area_id}))
        .await?;
    let dead = eventually("a dead letter", Duration::from_secs(10), || async {
        Ok(env.redis.dead_letters(None, 10).await?.into_iter().next())
    })
    .await?;
    assert_eq!(dead.code, "unknown_area");

    // Once the AREA exists, redriving the dead letter runs the event.
    let reaction = area_store::NewReaction {
        id: Uuid::new_v4(),
        area_id,
        service: "webhook".into(),
        config: json!({"url": receiver.url("/ok/redriven")}),
        enabled: true,
        position: 0,
    };
    env.insert(
        &[area_store::NewArea {
            id: area_id,
            name: "late".into(),
            enabled: true,
        }],
        &[reaction],
    )
    .await?;
    let redriven = env.redis.redrive(&dead.id).await?;
    assert!(redriven.is_some());
    eventually(
        "the redriven event to run",
        Duration::from_secs(20),
        || async {
            let rows = env.store.executions_of_event("evt-later").await?;
            Ok(rows
                .first()
                .filter(|row| row.status().is_terminal())
                .map(|_| ()))
        },
    )
    .await?;
    worker.stop().await?;

    assert_eq!(
        env.redis.dead_letter_count().await?,
        0,
        "the dead letter was removed"
    );
    assert_eq!(receiver.requests_to("/ok/redriven").len(), 1);
    Ok(())
}
