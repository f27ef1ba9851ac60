//! `cargo xtask demo`: the worker's main job end to end on sample events.
//!
//! It migrates a database of its own (`area_demo`, recreated each run), seeds
//! AREAs whose webhooks call a receiver it starts on loopback (most answer 200,
//! some answer 500 twice and then 200, one answers 404) and one whose email and
//! Slack reactions go to a real SMTP server and a local Slack API server, starts the real
//! `area-worker` binary, publishes 1,000 events, waits until every execution is
//! settled and prints a summary. It fails if any event or execution is
//! unaccounted for, or if the receiver's tally disagrees with PostgreSQL.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail, ensure};
use area_store::{ExecutionRow, ExecutionStatus, NewArea, NewReaction, Store, StoreOptions};
use area_stream::{Redis, RedisOptions, StreamKeys};
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tokio::process::{Child, Command};
use uuid::Uuid;

use area_e2e::{FakeSlack, Receiver, SmtpSink};

/// Every peer the demo's reactions talk to.
struct Peers {
    receiver: Receiver,
    smtp: SmtpSink,
    slack: FakeSlack,
    slack_token: String,
}

impl Peers {
    async fn start() -> anyhow::Result<Self> {
        let slack_token = format!("xoxb-demo-{}", Uuid::new_v4().simple());
        Ok(Self {
            receiver: Receiver::start().await?,
            smtp: SmtpSink::start().await?,
            slack: FakeSlack::start(&slack_token).await?,
            slack_token,
        })
    }

    /// Requests, messages and posts received per dedup key, across all peers
    /// (dedup keys are unique per execution, so the tallies never overlap).
    fn tally(&self) -> HashMap<String, u32> {
        let webhook_keys = self
            .receiver
            .requests()
            .into_iter()
            .map(|request| request.webhook_id);
        let email_keys = self.smtp.messages().into_iter().map(|message| {
            message["message"]["headers"]["x-area-dedup-key"]
                .as_str()
                .map(str::to_owned)
        });
        let slack_keys = self
            .slack
            .posts()
            .into_iter()
            .map(|post| post.dedup_key().map(str::to_owned));
        let mut tally = HashMap::new();
        for key in webhook_keys.chain(email_keys).chain(slack_keys) {
            *tally.entry(key.unwrap_or_default()).or_default() += 1;
        }
        tally
    }
}

/// Options of `demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Events to publish.
    #[arg(long, default_value_t = 1000)]
    events: usize,
    /// PostgreSQL server; the demo uses its own database `area_demo` on it.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/area"
    )]
    database_url: String,
    /// Redis; the demo uses keys under `area-demo:`.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Build and run the release binary instead of the debug one.
    #[arg(long)]
    release: bool,
    /// Longest wait for every execution to settle, in seconds.
    #[arg(long, default_value_t = 180)]
    timeout_secs: u64,
}

const PREFIX: &str = "area-demo:";

/// One seeded reaction and what the demo expects of it.
struct Expectation {
    status: ExecutionStatus,
    attempts: i32,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    area_worker_free_crypto();
    let database_url = demo_database_url(&args.database_url)?;
    // Held until the demo ends: a second demo on the same servers waits for it
    // instead of resetting the database and keys under it.
    let _lock = demo_lock(&database_url).await?;
    reset_database(&database_url).await?;
    crate::migrate::migrate(&database_url).await?;
    let store = Store::connect(&StoreOptions::new(&database_url)).await?;
    let redis = connect_redis(&args.redis_url).await?;
    clear_keys(&redis).await?;

    let peers = Peers::start().await?;
    let (areas, expectations) = seed(&store, &peers.receiver).await?;
    println!(
        "seeded {} AREAs with {} reactions; webhook receiver on {}, SMTP server on 127.0.0.1:{}, Slack API on {}",
        areas.len(),
        expectations.len(),
        peers.receiver.addr,
        peers.smtp.port,
        peers.slack.addr,
    );

    let binary = build_worker(args.release)?;
    let log_path = binary
        .parent()
        .unwrap_or(&binary)
        .join("area-demo-worker.log");
    let mut worker = start_worker(&binary, &database_url, &args.redis_url, &log_path, &peers)?;
    println!(
        "worker started (pid {}), log in {}",
        worker.id().unwrap_or_default(),
        log_path.display()
    );

    let result = drive(&args, &store, &redis, &peers, &areas, &expectations).await;
    let stopped = stop_worker(&mut worker).await;
    result?;
    stopped?;
    println!("demo passed: every event and execution accounted for");
    Ok(())
}

/// The demo never opens a TLS connection, but the workspace's clients expect one
/// provider to be installed before any is built.
fn area_worker_free_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn drive(
    args: &Args,
    store: &Store,
    redis: &Redis,
    peers: &Peers,
    areas: &[(Uuid, usize)],
    expectations: &HashMap<Uuid, Expectation>,
) -> anyhow::Result<()> {
    let published = publish(redis, areas, args.events).await?;
    let expected_rows: usize = published.values().map(|(_, reactions, _)| reactions).sum();
    let settled_at =
        wait_settled(store, expected_rows, Duration::from_secs(args.timeout_secs)).await?;

    let rows = store.oldest_executions(expected_rows as i64 + 1).await?;
    let report = check(&rows, &published, expectations, peers, redis).await?;
    print_summary(&rows, &published, report, settled_at);
    Ok(())
}

fn demo_database_url(server_url: &str) -> anyhow::Result<String> {
    let mut url = url_parse(server_url)?;
    url.set_path("/area_demo");
    Ok(url.to_string())
}

fn url_parse(text: &str) -> anyhow::Result<url::Url> {
    url::Url::parse(text).with_context(|| format!("parse database URL {text}"))
}

/// A session-level advisory lock on the server's `postgres` database, taken
/// by every demo: the connection holds it until it is dropped.
async fn demo_lock(database_url: &str) -> anyhow::Result<diesel_async::AsyncPgConnection> {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

    // Any fixed number unlikely to be used by others on a shared server.
    const DEMO_LOCK_KEY: i64 = 0x0a7e_a0de_0000_0001;
    let mut admin = url_parse(database_url)?;
    admin.set_path("/postgres");
    let mut connection = AsyncPgConnection::establish(admin.as_str())
        .await
        .with_context(|| {
            format!(
                "connect to PostgreSQL at {}:{} (is it running?)",
                admin.host_str().unwrap_or("?"),
                admin.port().unwrap_or(5432)
            )
        })?;
    let taken = diesel::sql_query(format!("SELECT pg_try_advisory_lock({DEMO_LOCK_KEY})"))
        .load::<LockTaken>(&mut connection)
        .await
        .context("take the demo lock")?;
    if !taken.first().is_some_and(|row| row.taken) {
        println!("another demo is running on this PostgreSQL server; waiting for it to finish");
        diesel::sql_query(format!("SELECT pg_advisory_lock({DEMO_LOCK_KEY})"))
            .execute(&mut connection)
            .await
            .context("wait for the demo lock")?;
    }
    Ok(connection)
}

#[derive(diesel::QueryableByName)]
struct LockTaken {
    #[diesel(sql_type = diesel::sql_types::Bool, column_name = pg_try_advisory_lock)]
    taken: bool,
}

async fn reset_database(database_url: &str) -> anyhow::Result<()> {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

    let mut admin = url_parse(database_url)?;
    admin.set_path("/postgres");
    let mut connection = AsyncPgConnection::establish(admin.as_str())
        .await
        .with_context(|| {
            format!(
                "connect to PostgreSQL at {}:{} (is it running?)",
                admin.host_str().unwrap_or("?"),
                admin.port().unwrap_or(5432)
            )
        })?;
    diesel::sql_query("DROP DATABASE IF EXISTS area_demo WITH (FORCE)")
        .execute(&mut connection)
        .await
        .context("drop the previous demo database")?;
    Ok(())
}

async fn connect_redis(url: &str) -> anyhow::Result<Redis> {
    let mut options = RedisOptions::new(url);
    options.keys = StreamKeys::new(PREFIX);
    tokio::time::timeout(Duration::from_secs(5), Redis::connect(options))
        .await
        .ok()
        .and_then(Result::ok)
        .with_context(|| format!("connect to Redis at {url} (is it running?)"))
}

async fn clear_keys(redis: &Redis) -> anyhow::Result<()> {
    let mut connection = redis.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{PREFIX}*"))
        .query_async(&mut connection)
        .await?;
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(&keys)
            .query_async::<()>(&mut connection)
            .await?;
    }
    Ok(())
}

/// Ten AREAs: six with one webhook answering 200, three with a 200 webhook and
/// one that fails twice before succeeding, one whose webhook answers 404.
async fn seed(
    store: &Store,
    receiver: &Receiver,
) -> anyhow::Result<(Vec<(Uuid, usize)>, HashMap<Uuid, Expectation>)> {
    let mut areas = Vec::new();
    let mut reactions = Vec::new();
    let mut expectations = HashMap::new();
    let mut add_to = |service: &str,
                      area_id: Uuid,
                      position: i32,
                      config: serde_json::Value,
                      expectation: Expectation| {
        let id = Uuid::new_v4();
        reactions.push(NewReaction {
            id,
            area_id,
            service: service.into(),
            config,
            enabled: true,
            position,
        });
        expectations.insert(id, expectation);
    };
    let ok = || Expectation {
        status: ExecutionStatus::Ok,
        attempts: 1,
    };
    for index in 0..11 {
        let area_id = Uuid::new_v4();
        let reaction_count = match index {
            0..=5 => {
                add_to(
                    "webhook",
                    area_id,
                    0,
                    json!({"url": receiver.url(&format!("/ok/notify-{index}"))}),
                    ok(),
                );
                1
            }
            6..=8 => {
                add_to(
                    "webhook",
                    area_id,
                    0,
                    json!({
                        "url": receiver.url(&format!("/ok/chat-{index}")),
                        "headers": {"x-demo-action": "{{ event.action }}"},
                        "body": {"text": "push to {{ payload.repo }} by {{ payload.user }}"},
                    }),
                    ok(),
                );
                add_to(
                    "webhook",
                    area_id,
                    1,
                    json!({"url": receiver.url(&format!("/flaky/2/ci-{index}"))}),
                    Expectation {
                        status: ExecutionStatus::Ok,
                        attempts: 3,
                    },
                );
                2
            }
            9 => {
                add_to(
                    "webhook",
                    area_id,
                    0,
                    json!({"url": receiver.url("/status/404/retired")}),
                    Expectation {
                        status: ExecutionStatus::Failed,
                        attempts: 1,
                    },
                );
                1
            }
            _ => {
                add_to(
                    "email",
                    area_id,
                    0,
                    json!({
                        "to": ["ops@area.test", "{{ payload.user }}@area.test"],
                        "subject": "Résumé ✅ push to {{ payload.repo }}",
                        "text": "{{ payload.user }} pushed to {{ payload.repo }}.",
                        "html": "<p><b>{{ payload.user }}</b> pushed to {{ payload.repo }}.</p>",
                    }),
                    ok(),
                );
                add_to(
                    "slack",
                    area_id,
                    1,
                    json!({"channel": "#deploys", "text": "🚀 {{ payload.user }} pushed to {{ payload.repo }}"}),
                    ok(),
                );
                2
            }
        };
        areas.push((area_id, reaction_count));
    }
    let new_areas: Vec<NewArea> = areas
        .iter()
        .enumerate()
        .map(|(index, (id, _))| NewArea {
            id: *id,
            name: format!("demo area {index}"),
            enabled: true,
        })
        .collect();
    store
        .insert_areas(&new_areas, &reactions)
        .await
        .context("seed the demo AREAs")?;
    Ok((areas, expectations))
}

fn build_worker(release: bool) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.args([
        "build",
        "--quiet",
        "-p",
        "area-worker",
        "--bin",
        "area-worker",
    ]);
    if release {
        command.arg("--release");
    }
    println!(
        "building area-worker{} ...",
        if release { " (release)" } else { "" }
    );
    let status = command.status().context("run cargo build")?;
    ensure!(status.success(), "building area-worker failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    Ok(target
        .join(if release { "release" } else { "debug" })
        .join("area-worker"))
}

fn start_worker(
    binary: &PathBuf,
    database_url: &str,
    redis_url: &str,
    log_path: &PathBuf,
    peers: &Peers,
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log_path).context("create the worker log")?;
    Command::new(binary)
        .arg("run")
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", redis_url)
        .env("AREA_STREAM_PREFIX", PREFIX)
        .env("AREA_API_ADDR", "127.0.0.1:0")
        .env("AREA_WEBHOOK_ALLOW", "127.0.0.1")
        .env("AREA_RETRY_BASE_MS", "200")
        .env("AREA_CONSUMER", "demo-worker")
        .env("AREA_SMTP_HOST", "127.0.0.1")
        .env("AREA_SMTP_PORT", peers.smtp.port.to_string())
        .env("AREA_SMTP_TLS", "none")
        .env("AREA_SMTP_FROM", "AREA demo <demo@area.test>")
        .env("AREA_SLACK_TOKEN", &peers.slack_token)
        .env("AREA_SLACK_API_URL", peers.slack.api_url())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", binary.display()))
}

async fn stop_worker(worker: &mut Child) -> anyhow::Result<()> {
    let Some(pid) = worker.id() else {
        bail!("the worker exited before the demo ended")
    };
    let signaled = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    ensure!(signaled.success(), "cannot send SIGTERM to the worker");
    let status = tokio::time::timeout(Duration::from_secs(30), worker.wait())
        .await
        .context("the worker did not exit within 30 s of SIGTERM")??;
    ensure!(
        status.success(),
        "the worker exited with {status} after SIGTERM"
    );
    println!("worker drained and exited cleanly on SIGTERM");
    Ok(())
}

/// Publishes the events round-robin over the AREAs; returns, per event id, its
/// AREA, its number of reactions and when it was published.
async fn publish(
    redis: &Redis,
    areas: &[(Uuid, usize)],
    count: usize,
) -> anyhow::Result<HashMap<String, (Uuid, usize, SystemTime)>> {
    let bar = ProgressBar::new(count as u64).with_style(
        ProgressStyle::with_template("publishing {bar:40} {pos}/{len} events")
            .expect("the template is valid"),
    );
    let mut published = HashMap::with_capacity(count);
    let users = ["ada", "linus", "grace", "ken"];
    for index in 0..count {
        let (area_id, reactions) = areas[index % areas.len()];
        let id = format!("demo-{index}");
        let event = json!({
            "id": id,
            "area_id": area_id,
            "action": "github.push",
            "occurred_at": Utc::now().to_rfc3339(),
            "payload": {"repo": format!("repo-{}", index % 7), "user": users[index % users.len()]},
        });
        let at = SystemTime::now();
        redis
            .publish_event(&event.to_string())
            .await
            .context("publish an event")?;
        published.insert(id, (area_id, reactions, at));
        bar.inc(1);
    }
    bar.finish();
    Ok(published)
}

async fn wait_settled(store: &Store, expected: usize, limit: Duration) -> anyhow::Result<Instant> {
    let bar = ProgressBar::new(expected as u64).with_style(
        ProgressStyle::with_template("settling   {bar:40} {pos}/{len} executions ({msg})")
            .expect("the template is valid"),
    );
    let started = Instant::now();
    loop {
        let counts = store.count_by_status().await?;
        let settled: i64 = counts
            .iter()
            .filter(|(status, _)| status.is_terminal())
            .map(|(_, count)| count)
            .sum();
        let retrying: i64 = counts
            .iter()
            .filter(|(status, _)| *status == ExecutionStatus::Retry)
            .map(|(_, count)| count)
            .sum();
        bar.set_position(settled as u64);
        bar.set_message(format!("{retrying} waiting to retry"));
        if settled as usize >= expected {
            bar.finish();
            return Ok(Instant::now());
        }
        if started.elapsed() > limit {
            bar.abandon();
            bail!("only {settled} of {expected} executions settled within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Report {
    retries: i64,
    latencies_ms: Vec<f64>,
    first_publish: SystemTime,
    last_finish: DateTime<Utc>,
}

async fn check(
    rows: &[ExecutionRow],
    published: &HashMap<String, (Uuid, usize, SystemTime)>,
    expectations: &HashMap<Uuid, Expectation>,
    peers: &Peers,
    redis: &Redis,
) -> anyhow::Result<Report> {
    let mut problems = Vec::new();
    let expected_rows: usize = published.values().map(|(_, reactions, _)| reactions).sum();
    if rows.len() != expected_rows {
        problems.push(format!(
            "{} execution rows, expected {expected_rows}",
            rows.len()
        ));
    }
    let mut rows_per_event: HashMap<&str, usize> = HashMap::new();
    for row in rows {
        *rows_per_event.entry(row.event_id.as_str()).or_default() += 1;
    }
    for (event_id, (_, reactions, _)) in published {
        let found = rows_per_event.get(event_id.as_str()).copied().unwrap_or(0);
        if found != *reactions {
            problems.push(format!(
                "event {event_id}: {found} executions, expected {reactions}"
            ));
        }
    }

    let tally = peers.tally();
    let mut retries = 0;
    let mut latencies_ms = Vec::with_capacity(rows.len());
    let mut last_finish = DateTime::<Utc>::MIN_UTC;
    for row in rows {
        retries += i64::from(row.attempt - 1);
        let received = tally.get(&row.dedup_key).copied().unwrap_or(0);
        if received as i32 != row.attempt {
            problems.push(format!(
                "execution {} ({}): {} attempts in PostgreSQL, {received} received by its peer",
                row.id, row.service, row.attempt
            ));
        }
        if let Some(expectation) = expectations.get(&row.reaction_id)
            && (row.status() != expectation.status || row.attempt != expectation.attempts)
        {
            problems.push(format!(
                "execution {}: {} after {} attempts, expected {} after {}",
                row.id,
                row.status(),
                row.attempt,
                expectation.status,
                expectation.attempts
            ));
        }
        if let (Some(finished), Some((_, _, at))) = (row.finished_at, published.get(&row.event_id))
        {
            let published_at: DateTime<Utc> = (*at).into();
            latencies_ms
                .push((finished - published_at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
            last_finish = last_finish.max(finished);
        }
    }
    let requests: u32 = tally.values().sum();
    let attempts: i32 = rows.iter().map(|row| row.attempt).sum();
    if requests as i32 != attempts {
        problems.push(format!(
            "the peers got {requests} requests for {attempts} recorded attempts"
        ));
    }
    let dead = redis.dead_letter_count().await?;
    if dead != 0 {
        problems.push(format!("{dead} dead letters, expected none"));
    }

    if !problems.is_empty() {
        for problem in problems.iter().take(20) {
            eprintln!("  ✗ {problem}");
        }
        bail!(
            "{} discrepancies between the events, PostgreSQL and the peers",
            problems.len()
        );
    }
    let first_publish = published
        .values()
        .map(|(_, _, at)| *at)
        .min()
        .unwrap_or_else(SystemTime::now);
    Ok(Report {
        retries,
        latencies_ms,
        first_publish,
        last_finish,
    })
}

fn print_summary(
    rows: &[ExecutionRow],
    published: &HashMap<String, (Uuid, usize, SystemTime)>,
    mut report: Report,
    _settled_at: Instant,
) {
    let mut by_status: HashMap<ExecutionStatus, usize> = HashMap::new();
    for row in rows {
        *by_status.entry(row.status()).or_default() += 1;
    }
    let first: DateTime<Utc> = report.first_publish.into();
    let span = (report.last_finish - first).num_milliseconds().max(1) as f64 / 1000.0;
    report.latencies_ms.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        let values = &report.latencies_ms;
        if values.is_empty() {
            return 0.0;
        }
        values[((values.len() - 1) as f64 * p).round() as usize]
    };

    println!();
    println!("summary");
    println!("  events published      {}", published.len());
    println!("  executions            {}", rows.len());
    for status in ExecutionStatus::ALL {
        if let Some(count) = by_status.get(&status) {
            println!("    {:<10}          {count}", status.as_str());
        }
    }
    println!("  retries done          {}", report.retries);
    println!(
        "  throughput            {:.0} executions/s (first publish to last settled)",
        rows.len() as f64 / span
    );
    println!(
        "  latency publish→done  p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(0.5),
        percentile(0.99),
        percentile(1.0)
    );
    println!("  by service");
    let mut services: Vec<&str> = rows.iter().map(|row| row.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    for service in services {
        let of_service = rows.iter().filter(|row| row.service == service);
        let (ok, failed) = of_service.fold((0, 0), |(ok, failed), row| match row.status() {
            ExecutionStatus::Ok => (ok + 1, failed),
            _ => (ok, failed + 1),
        });
        println!("    {service:<10}          {ok} ok, {failed} failed");
    }
    println!(
        "  peers' tally          matches PostgreSQL for every execution (HTTP receiver, SMTP server, Slack API)"
    );
}
