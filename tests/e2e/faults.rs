//! Delivery semantics under faults, proven with real processes: workers killed
//! with SIGKILL, Redis and PostgreSQL restarted mid-run, the stream deleted,
//! poison entries, slow reactions, shutdown under load, lost retries and
//! in-doubt attempts.

use std::collections::HashMap;
use std::time::Duration;

use area_e2e::{
    PrivatePostgres, PrivateRedis, Receiver, SmtpSink, TestEnv, TestWorker, WorkerOptions,
    WorkerProcess, eventually,
};
use area_store::{ExecutionStatus, NewExecution};
use area_stream::Job;
use serde_json::{Value, json};
use uuid::Uuid;

/// Executions per status; errors (a restarting server) count as nothing yet.
async fn counts(env: &TestEnv) -> HashMap<ExecutionStatus, i64> {
    env.store
        .count_by_status()
        .await
        .map(|counts| counts.into_iter().collect())
        .unwrap_or_default()
}

async fn wait_ok(env: &TestEnv, expected: i64, limit: Duration) -> anyhow::Result<()> {
    eventually(&format!("{expected} executions ok"), limit, || async {
        let ok = counts(env)
            .await
            .get(&ExecutionStatus::Ok)
            .copied()
            .unwrap_or(0);
        Ok((ok >= expected).then_some(()))
    })
    .await
}

async fn publish_many(
    env: &TestEnv,
    area_id: Uuid,
    prefix: &str,
    count: usize,
) -> anyhow::Result<()> {
    let mut connection = env.redis.connection();
    for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
        let mut pipeline = redis::pipe();
        for index in chunk {
            let event = json!({"id": format!("{prefix}-{index}"), "area_id": area_id});
            pipeline
                .cmd("XADD")
                .arg(env.redis.keys().events())
                .arg("*")
                .arg("event")
                .arg(event.to_string())
                .ignore();
        }
        pipeline.query_async::<()>(&mut connection).await?;
    }
    Ok(())
}

/// Requests per `webhook-id`.
fn tally(receiver: &Receiver) -> HashMap<String, usize> {
    let mut tally = HashMap::new();
    for request in receiver.requests() {
        *tally
            .entry(request.webhook_id.unwrap_or_default())
            .or_default() += 1;
    }
    tally
}

async fn all_rows(env: &TestEnv) -> anyhow::Result<Vec<area_store::ExecutionRow>> {
    Ok(env.store.oldest_executions(1_000_000).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_loses_nothing_and_duplicates_stay_bounded() -> anyhow::Result<()> {
    const EVENTS: usize = 5_000;
    const CONCURRENCY: usize = 64;
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[("webhook", json!({"url": receiver.url("/slow/2/kill")}))])
        .await?;
    let concurrency = CONCURRENCY.to_string();
    let settings = [
        ("AREA_CLAIM_IDLE_MS", "1500"),
        ("AREA_LEASE_MS", "1500"),
        ("AREA_REACTION_TIMEOUT_MS", "1000"),
        ("AREA_CONCURRENCY", concurrency.as_str()),
        ("AREA_BATCH_SIZE", "64"),
    ];
    let mut first = WorkerProcess::start(&env, "first", &settings).await?;
    let mut second = WorkerProcess::start(&env, "second", &settings).await?;

    publish_many(&env, area_id, "kill", EVENTS).await?;
    wait_ok(&env, 1_000, Duration::from_secs(120)).await?;
    first.kill().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut third = WorkerProcess::start(&env, "third", &settings).await?;
    wait_ok(&env, EVENTS as i64, Duration::from_secs(180)).await?;
    assert!(
        second.terminate(Duration::from_secs(30)).await?.success(),
        "{}",
        second.log()
    );
    assert!(
        third.terminate(Duration::from_secs(30)).await?.success(),
        "{}",
        third.log()
    );

    let rows = all_rows(&env).await?;
    assert_eq!(rows.len(), EVENTS, "exactly one execution per event");
    assert!(
        rows.iter().all(|row| row.status() == ExecutionStatus::Ok),
        "every execution ends ok"
    );
    let tally = tally(&receiver);
    let missing: Vec<&str> = rows
        .iter()
        .filter(|row| !tally.contains_key(&row.dedup_key))
        .map(|row| row.dedup_key.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "the receiver never saw {} keys, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    let duplicates: usize = tally.values().map(|count| count - 1).sum();
    assert!(
        duplicates <= CONCURRENCY,
        "{duplicates} duplicate deliveries, more than the {CONCURRENCY} attempts that can be in flight at the kill"
    );
    let taken_over = rows.iter().filter(|row| row.attempt > 1).count();
    assert!(
        taken_over <= CONCURRENCY,
        "{taken_over} executions needed a second attempt"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_mid_run_loses_nothing() -> anyhow::Result<()> {
    let mut redis = PrivateRedis::start().await?;
    let env = TestEnv::on_servers(&area_e2e::database_server_url(), &redis.url()).await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[("webhook", json!({"url": receiver.url("/slow/5/redis")}))])
        .await?;
    let mut worker = WorkerProcess::start(&env, "worker", &[("AREA_CONCURRENCY", "32")]).await?;

    publish_many(&env, area_id, "redis", 1_000).await?;
    wait_ok(&env, 150, Duration::from_secs(60)).await?;
    redis.restart(Duration::from_secs(1)).await?;
    // The test's own connection notices the restart on its next command.
    eventually(
        "the test's redis connection to recover",
        Duration::from_secs(10),
        || async { Ok(env.redis.ping().await.ok()) },
    )
    .await?;
    wait_ok(&env, 1_000, Duration::from_secs(120)).await?;
    assert!(
        worker.terminate(Duration::from_secs(30)).await?.success(),
        "{}",
        worker.log()
    );

    let rows = all_rows(&env).await?;
    assert_eq!(rows.len(), 1_000);
    assert!(rows.iter().all(|row| row.status() == ExecutionStatus::Ok));
    assert_eq!(
        env.pending(&env.redis.keys().events()).await?,
        0,
        "every event acknowledged"
    );
    assert_eq!(
        env.pending(&env.redis.keys().jobs("webhook")).await?,
        0,
        "every job acknowledged"
    );
    let tally = tally(&receiver);
    assert!(
        rows.iter().all(|row| tally.contains_key(&row.dedup_key)),
        "every execution reached the receiver"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_run_loses_nothing() -> anyhow::Result<()> {
    let postgres = PrivatePostgres::start().await?;
    let env = TestEnv::on_servers(&postgres.url("postgres"), &area_e2e::redis_url()).await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[("webhook", json!({"url": receiver.url("/slow/5/pg")}))])
        .await?;
    let mut worker = WorkerProcess::start(&env, "worker", &[("AREA_CONCURRENCY", "32")]).await?;

    publish_many(&env, area_id, "pg", 1_000).await?;
    wait_ok(&env, 150, Duration::from_secs(60)).await?;
    postgres.restart(Duration::from_secs(1)).await?;
    wait_ok(&env, 1_000, Duration::from_secs(120)).await?;
    assert!(
        worker.terminate(Duration::from_secs(30)).await?.success(),
        "{}",
        worker.log()
    );

    let rows = all_rows(&env).await?;
    assert_eq!(rows.len(), 1_000);
    assert!(rows.iter().all(|row| row.status() == ExecutionStatus::Ok));
    assert_eq!(
        env.pending(&env.redis.keys().events()).await?,
        0,
        "every event acknowledged"
    );
    assert_eq!(
        env.pending(&env.redis.keys().jobs("webhook")).await?,
        0,
        "every job acknowledged"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_event_stream_is_recreated_and_new_events_run() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[("webhook", json!({"url": receiver.url("/ok/deleted")}))])
        .await?;
    let worker = TestWorker::start(WorkerOptions::for_env(&env)).await?;

    env.publish(&json!({"id": "before", "area_id": area_id}))
        .await?;
    wait_ok(&env, 1, Duration::from_secs(20)).await?;
    let mut connection = env.redis.connection();
    redis::cmd("DEL")
        .arg(env.redis.keys().events())
        .query_async::<()>(&mut connection)
        .await?;
    env.publish(&json!({"id": "after", "area_id": area_id}))
        .await?;
    wait_ok(&env, 2, Duration::from_secs(20)).await?;
    worker.stop().await?;

    assert_eq!(env.store.executions_of_event("after").await?.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_entries_are_dead_lettered_once_and_valid_events_all_run() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[("webhook", json!({"url": receiver.url("/ok/poison")}))])
        .await?;
    let worker = TestWorker::start(WorkerOptions::for_env(&env)).await?;

    let huge = "x".repeat(2 * 1024 * 1024);
    let poison: Vec<(Vec<u8>, &str)> = vec![
        (b"not json at all".to_vec(), "invalid_json"),
        (br#"[1, 2, 3]"#.to_vec(), "not_an_object"),
        (
            json!({"area_id": 42}).to_string().into_bytes(),
            "invalid_field",
        ),
        (
            json!({"area_id": area_id, "occurred_at": 7})
                .to_string()
                .into_bytes(),
            "invalid_field",
        ),
        (
            json!({"area_id": Uuid::new_v4()}).to_string().into_bytes(),
            "unknown_area",
        ),
        (
            json!({"area_id": area_id, "payload": huge})
                .to_string()
                .into_bytes(),
            "too_large",
        ),
    ];
    let valid = [
        json!({"id": "nul", "area_id": area_id, "payload": {"text": "a\u{0}b", "k\u{0}": 1}}),
        json!({"id": "emoji", "area_id": area_id, "payload": {"text": "🎉🚀 ✅ 東京"}}),
        json!({"id": "plain", "area_id": area_id}),
    ];
    let mut expected = HashMap::new();
    for (index, (body, code)) in poison.iter().enumerate() {
        let entry_id = env.publish_raw(&[("event", body.as_slice())]).await?;
        expected.insert(entry_id, *code);
        env.publish(&valid[index % valid.len()].clone()).await.ok();
    }
    for event in &valid {
        env.publish(event).await?;
    }

    wait_ok(&env, valid.len() as i64, Duration::from_secs(30)).await?;
    let dead = eventually(
        "the poison dead letters",
        Duration::from_secs(10),
        || async {
            let dead = env.redis.dead_letters(None, 100).await?;
            Ok((dead.len() >= poison.len()).then_some(dead))
        },
    )
    .await?;
    // Nothing loops: a while later there are no new attempts and no new dead letters.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    worker.stop().await?;

    assert_eq!(
        env.redis.dead_letter_count().await?,
        poison.len() as u64,
        "each poison entry dead-lettered once"
    );
    for letter in &dead {
        assert_eq!(
            Some(&letter.code.as_str()),
            expected.get(&letter.entry_id),
            "{letter:?}"
        );
        assert!(!letter.reason.is_empty());
    }
    let rows = all_rows(&env).await?;
    assert_eq!(
        rows.len(),
        valid.len(),
        "each valid event ran once, however often it was published"
    );
    assert!(
        rows.iter()
            .all(|row| row.status() == ExecutionStatus::Ok && row.attempt == 1)
    );
    let nul = env.store.executions_of_event("nul").await?;
    assert_eq!(
        nul[0].input_payload["payload"]["text"], "a\u{FFFD}b",
        "U+0000 replaced by policy"
    );
    let emoji = env.store.executions_of_event("emoji").await?;
    assert_eq!(emoji[0].input_payload["payload"]["text"], "🎉🚀 ✅ 東京");
    assert_eq!(env.pending(&env.redis.keys().events()).await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaction_slower_than_the_claim_threshold_runs_once() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[(
            "webhook",
            json!({"url": receiver.url("/slow/2000/patient")}),
        )])
        .await?;
    let mut options = WorkerOptions::for_env(&env);
    options.config.claim_idle_ms = 300;
    options.config.lease_ms = 300;
    options.config.reaction_timeout_ms = 10_000;
    let mut other = options.clone();
    other.config.consumer = Some(format!("other-{}", Uuid::new_v4().simple()));
    let first = TestWorker::start(options).await?;
    let second = TestWorker::start(other).await?;

    env.publish(&json!({"id": "slow", "area_id": area_id}))
        .await?;
    wait_ok(&env, 1, Duration::from_secs(30)).await?;
    // Leave time for a wrongful takeover to show up.
    tokio::time::sleep(Duration::from_millis(700)).await;
    first.stop().await?;
    second.stop().await?;

    assert_eq!(receiver.count(), 1, "the slow reaction ran once");
    let row = &env.store.executions_of_event("slow").await?[0];
    assert_eq!(row.attempt, 1);
    assert_eq!(
        row.attempts.as_array().map(Vec::len),
        Some(1),
        "{:#}",
        row.attempts
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_200_in_flight_records_them_all_and_exits_zero() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[("webhook", json!({"url": receiver.url("/slow/1500/drain")}))])
        .await?;
    let mut worker = WorkerProcess::start(
        &env,
        "draining",
        &[
            ("AREA_CONCURRENCY", "256"),
            ("AREA_DRAIN_TIMEOUT_MS", "10000"),
        ],
    )
    .await?;

    publish_many(&env, area_id, "drain", 200).await?;
    eventually(
        "200 requests in flight",
        Duration::from_secs(30),
        || async { Ok((receiver.count() >= 200).then_some(())) },
    )
    .await?;
    let status = worker.terminate(Duration::from_secs(12)).await?;
    assert!(status.success(), "exit {status}: {}", worker.log());

    let rows = all_rows(&env).await?;
    assert_eq!(rows.len(), 200);
    assert!(
        rows.iter().all(|row| row.status() == ExecutionStatus::Ok),
        "every finished attempt recorded"
    );
    assert_eq!(
        env.pending(&env.redis.keys().jobs("webhook")).await?,
        0,
        "and acknowledged"
    );
    let log = worker.log();
    assert!(
        log.contains("shutting down") && log.contains("drained"),
        "{log}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_cut_by_the_drain_deadline_stay_pending_and_another_worker_finishes_them()
-> anyhow::Result<()> {
    cut_attempts_are_finished_by_another_worker(true).await
}

/// The same, with the executions passed through their job stream: the job
/// entries answer for the cut attempts instead of the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_run_from_jobs_and_cut_by_the_drain_deadline_are_finished_by_another_worker()
-> anyhow::Result<()> {
    cut_attempts_are_finished_by_another_worker(false).await
}

async fn cut_attempts_are_finished_by_another_worker(direct: bool) -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[("webhook", json!({"url": receiver.url("/slow/3000/cut")}))])
        .await?;
    let direct_run = direct.to_string();
    let settings = [
        ("AREA_DRAIN_TIMEOUT_MS", "300"),
        ("AREA_LEASE_MS", "1000"),
        ("AREA_CLAIM_IDLE_MS", "1000"),
        ("AREA_REACTION_TIMEOUT_MS", "5000"),
        ("AREA_DIRECT_RUN", direct_run.as_str()),
    ];
    let mut worker = WorkerProcess::start(&env, "cut", &settings).await?;
    publish_many(&env, area_id, "cut", 20).await?;
    eventually("20 requests in flight", Duration::from_secs(30), || async {
        Ok((receiver.count() >= 20).then_some(()))
    })
    .await?;
    let status = worker.terminate(Duration::from_secs(10)).await?;
    assert!(status.success(), "exit {status}: {}", worker.log());
    let running = counts(&env)
        .await
        .get(&ExecutionStatus::Running)
        .copied()
        .unwrap_or(0);
    assert_eq!(
        running, 20,
        "unfinished attempts are left running, not recorded"
    );
    // Run straight from the event, an attempt is answered for by the event's
    // entry; run from a job, by the job's.
    let (answering, idle) = if direct {
        (env.redis.keys().events(), env.redis.keys().jobs("webhook"))
    } else {
        (env.redis.keys().jobs("webhook"), env.redis.keys().events())
    };
    assert_eq!(
        env.pending(&answering).await?,
        20,
        "the entries that answer for the cut attempts stay pending"
    );
    assert_eq!(env.pending(&idle).await?, 0, "nothing else is pending");

    let mut successor = WorkerProcess::start(&env, "successor", &settings).await?;
    eventually(
        "the successor to report the entries it may take over",
        Duration::from_secs(30),
        || {
            let log = successor.log();
            let answering = answering.clone();
            async move {
                Ok(log
                    .lines()
                    .any(|line| {
                        line.contains("entries are pending on other consumers")
                            && line.contains(&answering)
                            && line.contains("entries=20")
                    })
                    .then_some(()))
            }
        },
    )
    .await?;
    wait_ok(&env, 20, Duration::from_secs(60)).await?;
    assert!(
        successor
            .terminate(Duration::from_secs(15))
            .await?
            .success()
    );
    let rows = all_rows(&env).await?;
    for row in &rows {
        let log = row.attempts.as_array().expect("attempt log");
        assert_eq!(
            log[0]["status"], "unknown",
            "the cut attempt is recorded as in doubt: {log:?}"
        );
        assert_eq!(log.last().unwrap()["status"], "ok");
    }
    let tally = tally(&receiver);
    assert!(
        rows.iter().all(|row| tally.get(&row.dedup_key) == Some(&2)),
        "same idempotency key reused"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_that_redis_forgot_is_found_from_postgres() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, _) = env
        .area(&[("webhook", json!({"url": receiver.url("/flaky/1/forgot")}))])
        .await?;
    let mut options = WorkerOptions::for_env(&env);
    options.config.retry_base_ms = 1_000;
    options.config.claim_idle_ms = 1_000;
    let worker = TestWorker::start(options).await?;

    env.publish(&json!({"id": "forgot", "area_id": area_id}))
        .await?;
    eventually(
        "the first attempt to fail",
        Duration::from_secs(20),
        || async {
            let rows = env.store.executions_of_event("forgot").await?;
            Ok(rows
                .first()
                .filter(|row| row.status() == ExecutionStatus::Retry)
                .map(|_| ()))
        },
    )
    .await?;
    let mut connection = env.redis.connection();
    let removed: u64 = redis::cmd("DEL")
        .arg(env.redis.keys().retries())
        .query_async(&mut connection)
        .await?;
    assert_eq!(
        removed, 1,
        "the retry was scheduled in Redis, and is now forgotten"
    );
    wait_ok(&env, 1, Duration::from_secs(30)).await?;
    worker.stop().await?;

    let row = &env.store.executions_of_event("forgot").await?[0];
    assert_eq!(row.attempt, 2);
    assert_eq!(receiver.count(), 2);
    Ok(())
}

/// An execution left `running` by a worker that died, with its job re-enqueued.
async fn orphan(
    env: &TestEnv,
    area_id: Uuid,
    reaction_id: Uuid,
    service: &str,
) -> anyhow::Result<Uuid> {
    let id = queued_without_job(env, area_id, reaction_id, service, "orphan").await?;
    set_columns(
        env,
        id,
        "status = 'running', attempt = 1, started_at = now() - interval '1 minute',
         locked_by = 'dead-worker', lease_until = now() - interval '1 second'",
    )
    .await?;
    env.redis
        .enqueue_jobs(&[Job {
            service: service.into(),
            execution_id: id,
        }])
        .await?;
    Ok(id)
}

/// A `queued` execution of event `event_id` whose job was never written (or
/// was lost with Redis's data).
async fn queued_without_job(
    env: &TestEnv,
    area_id: Uuid,
    reaction_id: Uuid,
    service: &str,
    event_id: &str,
) -> anyhow::Result<Uuid> {
    let id = Uuid::now_v7();
    let event = json!({"id": event_id, "area_id": area_id, "payload": {}});
    env.store
        .insert_executions(&[NewExecution {
            id,
            area_id,
            reaction_id,
            event_id: event_id.into(),
            service: service.into(),
            input_payload: event,
            correlation_id: None,
            dedup_key: NewExecution::dedup_key(event_id, reaction_id),
        }])
        .await?;
    Ok(id)
}

/// Sets columns of one execution behind the worker's back (`assignments` is
/// the SET list).
async fn set_columns(env: &TestEnv, id: Uuid, assignments: &str) -> anyhow::Result<()> {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

    let mut connection = AsyncPgConnection::establish(&env.database_url).await?;
    let changed = diesel::sql_query(format!("UPDATE executions SET {assignments} WHERE id = $1"))
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(&mut connection)
        .await?;
    anyhow::ensure!(changed == 1, "execution {id} not found");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_that_redis_lost_are_rebuilt_from_postgres() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, reactions) = env
        .area(&[("webhook", json!({"url": receiver.url("/ok/rebuilt")}))])
        .await?;
    let reaction = reactions[0];

    // Before any worker: one execution of each unsettled kind, none with a job,
    // as if Redis had restarted without persistence.
    let queued = queued_without_job(&env, area_id, reaction, "webhook", "lost-queued").await?;
    let running = queued_without_job(&env, area_id, reaction, "webhook", "lost-running").await?;
    set_columns(
        &env,
        running,
        "status = 'running', attempt = 1, started_at = now() - interval '1 minute',
         locked_by = 'dead-worker', lease_until = now() - interval '1 second'",
    )
    .await?;
    let retry = queued_without_job(&env, area_id, reaction, "webhook", "lost-retry").await?;
    set_columns(
        &env,
        retry,
        "status = 'retry', attempt = 1, next_attempt_at = now(),
         error = '{\"class\": \"retryable\", \"code\": \"http_503\"}'",
    )
    .await?;

    let mut options = WorkerOptions::for_env(&env);
    // Long enough that the periodic sweep of lost retries does not run: the
    // rebuild at start is what must find all three.
    options.config.claim_idle_ms = 60_000;
    let worker = TestWorker::start(options).await?;
    wait_ok(&env, 3, Duration::from_secs(20)).await?;

    // Later, the job stream vanishes with a job that had not been read yet.
    let late = queued_without_job(&env, area_id, reaction, "webhook", "lost-late").await?;
    let mut connection = env.redis.connection();
    redis::cmd("DEL")
        .arg(env.redis.keys().jobs("webhook"))
        .query_async::<()>(&mut connection)
        .await?;
    wait_ok(&env, 4, Duration::from_secs(20)).await?;
    worker.stop().await?;

    for id in [queued, running, retry, late] {
        let row = env.store.execution(id).await?.expect("the row exists");
        assert_eq!(row.status(), ExecutionStatus::Ok, "{row:?}");
        assert!(row.error.is_none(), "a success clears the error: {row:?}");
    }
    let tally = tally(&receiver);
    assert_eq!(tally.len(), 4, "each execution reached the receiver");
    assert!(
        tally.values().all(|&count| count == 1),
        "and only once: {tally:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_doubt_webhook_is_retried_with_the_same_key_even_under_the_fail_policy()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let receiver = Receiver::start().await?;
    let (area_id, reactions) = env
        .area(&[("webhook", json!({"url": receiver.url("/ok/doubt")}))])
        .await?;
    let id = orphan(&env, area_id, reactions[0], "webhook").await?;
    let mut options = WorkerOptions::for_env(&env);
    options.config.in_doubt_policy = area_worker::config::InDoubtPolicy::Fail;
    let worker = TestWorker::start(options).await?;
    wait_ok(&env, 1, Duration::from_secs(20)).await?;
    worker.stop().await?;

    let row = env.store.execution(id).await?.expect("the row exists");
    assert_eq!(row.attempt, 2);
    assert_eq!(row.attempts[0]["status"], "unknown");
    assert_eq!(row.attempts[0]["error"]["code"], "lease_expired");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].webhook_id.as_deref(),
        Some(row.dedup_key.as_str())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_doubt_email_follows_the_policy() -> anyhow::Result<()> {
    let sink = SmtpSink::start().await?;
    let config: Value = json!({"to": "ops@example.com", "subject": "deploy", "text": "done"});
    for (policy, expected) in [
        (
            area_worker::config::InDoubtPolicy::Fail,
            ExecutionStatus::Failed,
        ),
        (
            area_worker::config::InDoubtPolicy::Retry,
            ExecutionStatus::Ok,
        ),
    ] {
        let env = TestEnv::new().await?;
        let (area_id, reactions) = env.area(&[("email", config.clone())]).await?;
        let id = orphan(&env, area_id, reactions[0], "email").await?;
        let before = sink.messages().len();
        let mut options = WorkerOptions::for_env(&env);
        options.config.in_doubt_policy = policy;
        options.reaction_env.extend([
            ("AREA_SMTP_HOST".to_owned(), "127.0.0.1".to_owned()),
            ("AREA_SMTP_PORT".to_owned(), sink.port.to_string()),
            ("AREA_SMTP_TLS".to_owned(), "none".to_owned()),
            ("AREA_SMTP_FROM".to_owned(), "area@example.com".to_owned()),
        ]);
        let worker = TestWorker::start(options).await?;
        let row = eventually("the orphan to settle", Duration::from_secs(20), || async {
            let row = env.store.execution(id).await?;
            Ok(row.filter(|row| row.status().is_terminal()))
        })
        .await?;
        worker.stop().await?;

        assert_eq!(row.status(), expected, "policy {policy:?}: {row:#?}");
        let sent = sink.messages().len() - before;
        match policy {
            area_worker::config::InDoubtPolicy::Fail => {
                assert_eq!(row.error.as_ref().unwrap()["code"], "in_doubt");
                assert_eq!(sent, 0, "nothing sent under the fail policy");
            }
            area_worker::config::InDoubtPolicy::Retry => assert_eq!(sent, 1),
        }
    }
    Ok(())
}
