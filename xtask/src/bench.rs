//! `cargo xtask bench`: how fast the real worker binary runs executions against
//! the local Redis and PostgreSQL, next to what each part could do alone.
//!
//! It builds `area-worker` in release mode with the `noop` feature, starts a
//! webhook receiver in a process of its own, and then:
//!
//! 1. measures the ceilings of the parts alone (see [`crate::bench_ceilings`]);
//! 2. runs the scenarios `webhook` (one webhook reaction per event), `noop` (one
//!    reaction that does nothing: the engine's own cost) and `fanout` (five
//!    webhook reactions per event), each on a fresh database `area_bench` and
//!    keys under `area-bench:`, with a fresh worker process, publishing every
//!    event as fast as possible after a short warm-up;
//! 3. holds a fixed offered load (half the measured `webhook` maximum by
//!    default) for a minute and reports latency under it;
//! 4. publishes a backlog of a million events with no worker running, starts
//!    one, and watches its peak RSS while it works through the backlog.
//!
//! Every measured execution is checked `ok` in PostgreSQL, and the receiver's
//! request count is checked against the attempts recorded. The last lines are
//! machine-readable, one per scenario:
//! `bench: scenario=webhook per_s=N p50_ms=X p99_ms=Y rss_mb=Z ceiling_ratio=R`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use area_stream::{Redis, RedisOptions, StreamKeys};

use crate::bench_ceilings::{self, PostgresCeiling, ReceiverCeiling, RedisCeiling};
use crate::bench_process;
use crate::bench_receiver::ReceiverProcess;
use crate::bench_scenario::{self, Bench, Measured, Pace, Scenario, Service};

/// The bench's key prefix in Redis.
const PREFIX: &str = "area-bench:";

/// Options of `bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Events published in the `webhook` and `noop` scenarios (the `fanout`
    /// scenario publishes a fifth as many, for as many executions).
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Scenarios to run, among webhook, noop and fanout.
    #[arg(long, value_delimiter = ',', default_value = "webhook,noop,fanout")]
    scenarios: Vec<String>,
    /// Reactions per AREA in the `fanout` scenario.
    #[arg(long, default_value_t = 5)]
    fanout_reactions: usize,
    /// Events run before each measurement, so that connections are open.
    #[arg(long, default_value_t = 2000)]
    warmup: usize,
    /// Offered load of the fixed-load run, as a fraction of the `webhook`
    /// scenario's measured rate.
    #[arg(long, default_value_t = 0.5)]
    load_fraction: f64,
    /// Offered load of the fixed-load run in events per second; overrides
    /// `--load-fraction`.
    #[arg(long)]
    load_rate: Option<f64>,
    /// How long the fixed load is held, in seconds; 0 skips the run.
    #[arg(long, default_value_t = 60)]
    load_secs: u64,
    /// Events waiting before the worker starts, for the memory check; 0 skips it.
    #[arg(long, default_value_t = 1_000_000)]
    backlog: usize,
    /// How long the worker works through the backlog while its RSS is watched.
    #[arg(long, default_value_t = 30)]
    backlog_secs: u64,
    /// Skip the ceilings of the parts alone.
    #[arg(long)]
    no_ceilings: bool,
    /// Use this worker binary instead of building one.
    #[arg(long)]
    worker_binary: Option<PathBuf>,
    /// Extra environment of the worker, `KEY=VALUE`, e.g. `AREA_BATCH_SIZE=512`.
    #[arg(long = "worker-env", value_parser = parse_key_value)]
    worker_env: Vec<(String, String)>,
    /// PostgreSQL server; the bench uses its own databases `area_bench` and
    /// `area_bench_ceiling` on it.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/area"
    )]
    database_url: String,
    /// Redis; the bench uses keys under `area-bench:`.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Longest wait for one scenario to settle, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

/// The ceilings measured in this run.
#[derive(Default)]
struct Ceilings {
    redis: Option<RedisCeiling>,
    postgres: Vec<PostgresCeiling>,
    receiver: Option<ReceiverCeiling>,
}

impl Ceilings {
    /// The lowest ceiling that applies to a scenario, in its units.
    fn lowest(&self, uses_receiver: bool) -> Option<f64> {
        let mut values = Vec::new();
        if let Some(redis) = self.redis {
            values.push(redis.read_ack_per_s);
        }
        if let Some(best) = self
            .postgres
            .iter()
            .map(|pg| pg.lifecycle_per_s)
            .reduce(f64::max)
        {
            values.push(best);
        }
        if uses_receiver && let Some(receiver) = self.receiver {
            values.push(receiver.per_s);
        }
        values.into_iter().reduce(f64::min)
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let binary = match &args.worker_binary {
        Some(binary) => binary.clone(),
        None => build_worker()?,
    };
    let database_url = database_url(&args.database_url, "area_bench")?;
    let redis = connect_redis(&args.redis_url).await?;
    let redis_info = redis_server_info(&redis).await;
    let redis_pid = redis_info.as_ref().map(|info| info.pid);
    let receiver = ReceiverProcess::start().await?;
    println!("machine   {}", bench_process::machine());
    println!("load      {}", bench_process::load_average());
    println!(
        "servers   Redis {}, PostgreSQL {}",
        redis_info.map_or_else(|| "unknown".into(), |info| info.version),
        postgres_version(&args.database_url).await
    );
    println!("worker    {}", binary.display());
    println!(
        "receiver  {} (pid {})",
        receiver.addr,
        receiver.pid().unwrap_or(0)
    );
    let sample_event: &'static str =
        bench_scenario::event_json("bench-", 0, uuid::Uuid::new_v4()).leak();

    let mut ceilings = Ceilings::default();
    if !args.no_ceilings {
        ceilings = measure_ceilings(&args, &receiver, sample_event).await?;
    }

    let bench = Bench {
        database_url: database_url.clone(),
        redis,
        redis_url: args.redis_url.clone(),
        prefix: PREFIX,
        binary,
        worker_env: args.worker_env.clone(),
        receiver: &receiver,
        redis_pid,
        warmup: args.warmup,
        timeout: Duration::from_secs(args.timeout_secs),
    };
    let mut results: Vec<(Measured, bool)> = Vec::new();
    for name in &args.scenarios {
        let scenario = scenario(name, &args)?;
        println!();
        println!("scenario {name}: {} events ...", scenario.events);
        let measured = bench.run(&scenario).await?;
        print_measured(
            &measured,
            ceilings.lowest(scenario.service == Service::Webhook),
        );
        results.push((measured, scenario.service == Service::Webhook));
    }

    let webhook_max = results
        .iter()
        .find(|(measured, _)| measured.name == "webhook")
        .map(|(measured, _)| measured.per_s);
    if args.load_secs > 0 {
        let rate = args
            .load_rate
            .or(webhook_max.map(|max| max * args.load_fraction));
        match rate {
            Some(rate) => {
                println!();
                println!(
                    "fixed load: {rate:.0} events/s of one webhook for {} s ...",
                    args.load_secs
                );
                let scenario = Scenario {
                    name: "webhook-load".into(),
                    service: Service::Webhook,
                    reactions_per_area: 1,
                    events: 0,
                    pace: Pace::Rate {
                        per_s: rate,
                        duration: Duration::from_secs(args.load_secs),
                    },
                };
                let measured = bench.run(&scenario).await?;
                print_measured(&measured, ceilings.lowest(true));
                results.push((measured, true));
            }
            None => println!("fixed load skipped: no webhook scenario ran and no --load-rate"),
        }
    }

    let mut backlog_line = None;
    if args.backlog > 0 {
        backlog_line = Some(run_backlog(&bench, args.backlog, args.backlog_secs).await?);
    }
    bench.cleanup().await?;
    crate::bench_scenario::clear_keys(&bench.redis, PREFIX).await?;

    println!();
    for (measured, uses_receiver) in &results {
        let ratio = ceilings
            .lowest(*uses_receiver)
            .map_or(0.0, |lowest| measured.per_s / lowest);
        println!(
            "bench: scenario={} per_s={:.0} p50_ms={:.1} p99_ms={:.1} rss_mb={:.1} ceiling_ratio={:.2}",
            measured.name,
            measured.per_s,
            measured.latency_ms[0],
            measured.latency_ms[1],
            measured.rss_mb,
            ratio
        );
    }
    if let Some(line) = backlog_line {
        println!("{line}");
    }
    Ok(())
}

fn scenario(name: &str, args: &Args) -> anyhow::Result<Scenario> {
    let (service, reactions_per_area, events) = match name {
        "webhook" => (Service::Webhook, 1, args.events),
        "noop" => (Service::Noop, 1, args.events),
        "fanout" => (
            Service::Webhook,
            args.fanout_reactions,
            args.events / args.fanout_reactions.max(1),
        ),
        other => anyhow::bail!("unknown scenario {other}: use webhook, noop or fanout"),
    };
    Ok(Scenario {
        name: name.to_owned(),
        service,
        reactions_per_area,
        events,
        pace: Pace::Max,
    })
}

async fn measure_ceilings(
    args: &Args,
    receiver: &ReceiverProcess,
    sample_event: &'static str,
) -> anyhow::Result<Ceilings> {
    println!();
    println!("ceilings of the parts alone");
    // The ceilings use the engine's default batch, whatever it becomes.
    let engine_batch = area_worker::Config::default().batch_size;
    let redis = bench_ceilings::redis(
        &args.redis_url,
        PREFIX,
        args.events,
        engine_batch,
        sample_event.as_bytes(),
    )
    .await
    .context("measure the Redis ceiling")?;
    println!(
        "  redis       XADD {:>9.0} entries/s pipelined; XREADGROUP+XACK {:>9.0} entries/s (batches of {engine_batch})",
        redis.xadd_per_s, redis.read_ack_per_s
    );

    let ceiling_url = database_url(&args.database_url, "area_bench_ceiling")?;
    let payload: serde_json::Value = serde_json::from_str(sample_event)?;
    let postgres = bench_ceilings::postgres(
        &ceiling_url,
        args.events.min(50_000),
        engine_batch,
        &[1, 2, 4],
        &payload,
    )
    .await
    .context("measure the PostgreSQL ceiling")?;
    drop_database(&ceiling_url).await?;
    for pg in &postgres {
        println!(
            "  postgres    {} loop(s): {:>7.0} executions/s insert+record; per connection insert {:.0}/s, record {:.0}/s",
            pg.loops, pg.lifecycle_per_s, pg.insert_per_s, pg.record_per_s
        );
    }

    let receiver_ceiling = bench_ceilings::receiver(
        receiver,
        sample_event.as_bytes(),
        64,
        Duration::from_secs(3),
    )
    .await
    .context("measure the receiver ceiling")?;
    println!(
        "  receiver    {:>7.0} requests/s (reqwest, 64 in flight, same host); {:.3} ms of receiver CPU per request",
        receiver_ceiling.per_s, receiver_ceiling.cpu_ms_per_request
    );
    Ok(Ceilings {
        redis: Some(redis),
        postgres,
        receiver: Some(receiver_ceiling),
    })
}

fn print_measured(measured: &Measured, lowest_ceiling: Option<f64>) {
    let [worker, redis, postgres, receiver, bench] = measured.cpu;
    if let Some(offered) = measured.offered_per_s {
        println!("  offered      {offered:.0} executions/s");
    }
    println!(
        "  executions   {} in {:.2} s: {:.0}/s (first publish to last ok)",
        measured.executions, measured.seconds, measured.per_s
    );
    println!(
        "  latency      publish→ok p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        measured.latency_ms[0], measured.latency_ms[1], measured.latency_ms[2]
    );
    println!("  worker RSS   peak {:.1} MiB", measured.rss_mb);
    println!(
        "  CPU seconds  worker {worker:.2}, redis {redis:.2}, postgres {postgres:.2}, receiver {receiver:.2}, publisher {bench:.2} (of {:.2} wall × 2 cores)",
        measured.seconds
    );
    if measured.retries > 0 {
        println!("  retries      {}", measured.retries);
    }
    if let Some(lowest) = lowest_ceiling {
        println!(
            "  ceiling      {:.2} of the lowest part's ceiling ({lowest:.0}/s)",
            measured.per_s / lowest
        );
    }
}

/// Publishes the backlog, starts a worker and watches its memory; returns the
/// machine-readable line.
async fn run_backlog(bench: &Bench<'_>, backlog: usize, seconds: u64) -> anyhow::Result<String> {
    println!();
    println!("backlog: {backlog} events waiting before the worker starts ...");
    let areas = bench.prepare(Service::Webhook).await?;
    let started = Instant::now();
    bench.publish_max("backlog-", &areas, backlog).await?;
    println!(
        "  published    {backlog} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut worker = bench.start_backlog_worker().await?;
    let started = Instant::now();
    let mut peak_rss = 0.0_f64;
    while started.elapsed() < Duration::from_secs(seconds) {
        peak_rss = peak_rss.max(bench_process::rss_mb(worker.pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hwm = bench_process::peak_rss_mb(worker.pid);
    let elapsed = started.elapsed().as_secs_f64();
    let done = bench.ok_count().await?;
    let mut connection = bench.redis.connection();
    let memory: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut connection)
        .await?;
    let redis_mb = memory
        .lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|bytes| bytes.trim().parse::<f64>().ok())
        .map_or(0.0, |bytes| bytes / 1024.0 / 1024.0);
    worker.stop().await?;
    ensure!(done > 0, "the worker finished nothing of the backlog");
    let per_s = done as f64 / elapsed;
    println!(
        "  worked       {elapsed:.0} s: {done} executions ok ({per_s:.0}/s), the rest still waiting in Redis ({redis_mb:.0} MiB used)"
    );
    println!("  worker RSS   peak {hwm:.1} MiB (VmHWM; sampled VmRSS peak {peak_rss:.1} MiB)");
    Ok(format!(
        "bench: scenario=backlog events={backlog} seconds={elapsed:.0} per_s={per_s:.0} rss_mb={hwm:.1}"
    ))
}

/// Builds xtask in the `bench-tools` profile and runs this very command with
/// it; returns when that run ends, failing if it failed.
pub fn rerun_optimised() -> anyhow::Result<()> {
    println!("building xtask (profile bench-tools) ...");
    cargo_build(&["-p", "xtask", "--bin", "xtask", "--profile", "bench-tools"])?;
    let xtask = target_dir().join("bench-tools").join("xtask");
    let status = std::process::Command::new(&xtask)
        .args(std::env::args_os().skip(1))
        .status()
        .with_context(|| format!("run {}", xtask.display()))?;
    ensure!(status.success(), "the bench failed ({status})");
    Ok(())
}

fn cargo_build(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet"])
        .args(args)
        .current_dir(workspace_root())
        .status()
        .context("run cargo build")?;
    ensure!(status.success(), "cargo build {} failed", args.join(" "));
    Ok(())
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn build_worker() -> anyhow::Result<PathBuf> {
    println!("building area-worker (release, features noop) ...");
    cargo_build(&[
        "--release",
        "-p",
        "area-worker",
        "--bin",
        "area-worker",
        "--features",
        "noop",
    ])?;
    Ok(target_dir().join("release").join("area-worker"))
}

fn database_url(server_url: &str, name: &str) -> anyhow::Result<String> {
    let mut url =
        url::Url::parse(server_url).with_context(|| format!("parse database URL {server_url}"))?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// Drops `database_url`'s database if it exists, creates it and applies the
/// migrations.
pub async fn recreate_database(database_url: &str) -> anyhow::Result<()> {
    drop_database(database_url).await?;
    area_store::create_database_if_missing(database_url)
        .await
        .context("create the bench database")?;
    area_store::run_migrations(database_url)
        .await
        .context("apply migrations")?;
    Ok(())
}

async fn drop_database(url: &str) -> anyhow::Result<()> {
    let name = area_store::database_name(url)?;
    let admin = database_url(url, "postgres")?;
    sql(
        &admin,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await
}

/// Runs one statement on `database_url`.
pub async fn sql(database_url: &str, statement: &str) -> anyhow::Result<()> {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

    let mut connection = AsyncPgConnection::establish(database_url)
        .await
        .with_context(|| format!("connect to PostgreSQL for {statement:?} (is it running?)"))?;
    diesel::sql_query(statement)
        .execute(&mut connection)
        .await
        .with_context(|| format!("run {statement:?}"))?;
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

/// What INFO server says about redis-server.
struct RedisServer {
    pid: u32,
    version: String,
}

async fn redis_server_info(redis: &Redis) -> Option<RedisServer> {
    let mut connection = redis.connection();
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut connection)
        .await
        .ok()?;
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| value.trim().to_owned())
    };
    Some(RedisServer {
        pid: field("process_id:")?.parse().ok()?,
        version: field("redis_version:")?,
    })
}

/// PostgreSQL's `server_version`, or `unknown`.
async fn postgres_version(server_url: &str) -> String {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

    #[derive(diesel::QueryableByName)]
    struct Version {
        #[diesel(sql_type = diesel::sql_types::Text)]
        server_version: String,
    }
    let Ok(url) = database_url(server_url, "postgres") else {
        return "unknown".into();
    };
    let Ok(mut connection) = AsyncPgConnection::establish(&url).await else {
        return "unknown".into();
    };
    diesel::sql_query("SHOW server_version")
        .load::<Version>(&mut connection)
        .await
        .ok()
        .and_then(|rows| rows.into_iter().next())
        .map_or_else(|| "unknown".into(), |row| row.server_version)
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))
}
