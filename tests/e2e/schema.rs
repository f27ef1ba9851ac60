//! Properties of the schema that the engine's speed rests on.

use std::time::Duration;

use area_e2e::{TestEnv, eventually};
use area_store::{AttemptRecord, NewExecution, RecordedStatus};
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use uuid::Uuid;

#[derive(diesel::QueryableByName, Debug)]
struct UpdateCounts {
    #[diesel(sql_type = BigInt)]
    updates: i64,
    #[diesel(sql_type = BigInt)]
    hot_updates: i64,
}

/// A first attempt's claim and record write no indexed column, so PostgreSQL
/// can update the row in place (HOT) and add no index entry. An index on
/// `status`, `lease_until` or another column those updates write makes every
/// one of them a non-HOT update (an index on a column only one of the two
/// writes, half of them), which fails this.
///
/// A HOT update also needs room on the row's page. Fillfactor 30 leaves room
/// for the claim's version; the record's fits once PostgreSQL has pruned the
/// claimed row's first version, which it does not always get to first when
/// other sessions hold snapshots (seen with the whole suite running: 65 of 80).
/// Hence three quarters, not all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_attempt_updates_its_row_in_place() -> anyhow::Result<()> {
    const ROWS: usize = 40;
    let env = TestEnv::new().await?;
    let area_id = Uuid::new_v4();
    let rows: Vec<NewExecution> = (0..ROWS)
        .map(|index| {
            let reaction_id = Uuid::new_v4();
            let event_id = format!("hot-{index}");
            NewExecution {
                id: Uuid::now_v7(),
                area_id,
                reaction_id,
                dedup_key: NewExecution::dedup_key(&event_id, reaction_id),
                input_payload: json!({"id": event_id, "area_id": area_id, "payload": {"n": index}}),
                event_id,
                service: "webhook".into(),
                correlation_id: None,
            }
        })
        .collect();
    let queued = env.store.insert_executions(&rows).await?;
    let ids: Vec<Uuid> = queued.iter().map(|row| row.id).collect();
    let claimed = env
        .store
        .claim_executions(&ids, "hot-test", Duration::from_secs(60))
        .await?;
    assert_eq!(claimed.len(), ROWS);
    let records: Vec<AttemptRecord> = claimed
        .iter()
        .map(|execution| AttemptRecord {
            id: execution.id,
            attempt: execution.attempt,
            status: RecordedStatus::Ok,
            output: Some(json!({"status": 200, "body": "accepted", "truncated": false})),
            error: None,
        })
        .collect();
    assert_eq!(
        env.store.record_attempts(&records, "hot-test").await?.len(),
        ROWS
    );

    // Backends report their statistics within seconds, not at once.
    let counts = eventually(
        "the updates to reach the statistics",
        Duration::from_secs(30),
        || async {
            let mut connection = AsyncPgConnection::establish(&env.database_url).await?;
            let counts: UpdateCounts = diesel::sql_query(
                "SELECT n_tup_upd AS updates, n_tup_hot_upd AS hot_updates
                 FROM pg_stat_user_tables WHERE relname = 'executions'",
            )
            .get_result(&mut connection)
            .await?;
            Ok((counts.updates >= 2 * ROWS as i64).then_some(counts))
        },
    )
    .await?;
    assert_eq!(counts.updates, 2 * ROWS as i64, "{counts:?}");
    assert!(
        counts.hot_updates * 4 >= counts.updates * 3,
        "claims and records are HOT updates: {counts:?}"
    );
    Ok(())
}
