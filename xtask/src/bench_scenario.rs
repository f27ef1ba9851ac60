//! One benchmark scenario against the real worker binary: a fresh database and
//! key space, seeded AREAs, a worker process, a warm-up, the measured publish
//! (as fast as possible, or paced at a fixed rate), the wait until every
//! execution is settled, and the check of every row in PostgreSQL.
//!
//! Latency is taken per execution from the moment its event's XADD was sent to
//! the row's `finished_at`, which the recorder sets with `now()`: the start of
//! the statement that records the batch, a few milliseconds before its commit.
//! Throughput is the number of executions over the time from the first publish
//! to the last `finished_at`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use area_store::{NewArea, NewReaction, Store, StoreOptions};
use area_stream::Redis;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};
use serde_json::json;
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::bench_process::{self, CpuReading, Watched};
use crate::bench_receiver::ReceiverProcess;

/// AREAs seeded per scenario; events go to them round-robin.
const AREAS: usize = 100;
/// Events per pipelined XADD when publishing as fast as possible.
const PUBLISH_CHUNK: usize = 1000;
/// Prefix of the ids of measured events; warm-up events use `warm-`.
const MEASURED: &str = "bench-";

/// The reaction a scenario's AREAs run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// A POST to the bench receiver.
    Webhook,
    /// Nothing at all (the worker's `noop` feature).
    Noop,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Noop => "noop",
        }
    }
}

/// How events are published.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// All at once, in pipelines.
    Max,
    /// At `per_s` events a second for `duration`.
    Rate {
        /// Events per second offered.
        per_s: f64,
        /// How long the rate is held.
        duration: Duration,
    },
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Its name in the report.
    pub name: String,
    /// The reaction of every AREA.
    pub service: Service,
    /// Reactions per AREA.
    pub reactions_per_area: usize,
    /// Events to publish with [`Pace::Max`].
    pub events: usize,
    /// How to publish.
    pub pace: Pace,
}

/// Everything scenarios share.
pub struct Bench<'a> {
    /// The scenario database (recreated per scenario).
    pub database_url: String,
    /// Redis, with the bench's key prefix.
    pub redis: Redis,
    /// Redis URL for the worker.
    pub redis_url: String,
    /// The key prefix.
    pub prefix: &'static str,
    /// The worker binary.
    pub binary: PathBuf,
    /// Extra environment of the worker (`KEY=VALUE`).
    pub worker_env: Vec<(String, String)>,
    /// The receiver process.
    pub receiver: &'a ReceiverProcess,
    /// redis-server's pid.
    pub redis_pid: Option<u32>,
    /// Warm-up events before each measurement.
    pub warmup: usize,
    /// Longest wait for a scenario to settle.
    pub timeout: Duration,
}

/// What a scenario measured.
#[derive(Clone, Debug)]
pub struct Measured {
    /// The scenario's name.
    pub name: String,
    /// Executions measured (warm-up excluded).
    pub executions: usize,
    /// Executions per second, first publish to last `finished_at`.
    pub per_s: f64,
    /// The rate offered, for paced scenarios.
    pub offered_per_s: Option<f64>,
    /// Latency percentiles publish → `ok`, in milliseconds: p50, p99, max.
    pub latency_ms: [f64; 3],
    /// The worker's peak RSS in MiB.
    pub rss_mb: f64,
    /// CPU seconds: worker, Redis, PostgreSQL, receiver, publisher.
    pub cpu: [f64; 5],
    /// Wall seconds from first publish to last `finished_at`.
    pub seconds: f64,
    /// Attempts beyond the first (none expected).
    pub retries: i64,
}

impl Bench<'_> {
    /// Runs `scenario` from a fresh database to a checked result.
    pub async fn run(&self, scenario: &Scenario) -> anyhow::Result<Measured> {
        recreate_and_migrate(&self.database_url).await?;
        self.clear_keys().await?;
        let areas = self.seed(scenario).await?;

        let mut worker = self.start_worker(&scenario.name).await?;
        let result = self.drive(scenario, &areas, &worker).await;
        let stopped = worker.stop().await;
        let measured = result?;
        stopped?;
        Ok(measured)
    }

    async fn drive(
        &self,
        scenario: &Scenario,
        areas: &[Uuid],
        worker: &WorkerProcess,
    ) -> anyhow::Result<Measured> {
        let jobs = self.redis.keys().jobs(scenario.service.name());
        self.publish_max("warm-", areas, self.warmup).await?;
        self.wait_drained(&jobs, worker).await?;

        let watched = Watched {
            worker: worker.pid,
            redis: self.redis_pid,
            receiver: self.receiver.pid(),
        };
        let requests_before = self.receiver.count().await?;
        let attempts_before = self.webhook_attempts().await?;
        let cpu_before = watched.read();
        let published = match scenario.pace {
            Pace::Max => self.publish_max(MEASURED, areas, scenario.events).await?,
            Pace::Rate { per_s, duration } => self.publish_paced(areas, per_s, duration).await?,
        };
        self.wait_drained(&jobs, worker).await?;
        let cpu_after = watched.read();
        let rss_mb = bench_process::peak_rss_mb(worker.pid);

        let expected = published.len() * scenario.reactions_per_area;
        let rows = self.settled_rows(expected).await?;
        let requests = self.receiver.count().await? - requests_before;
        let attempts = self.webhook_attempts().await? - attempts_before;
        ensure!(
            requests as i64 == attempts,
            "the receiver answered {requests} requests for {attempts} recorded webhook attempts"
        );
        Ok(measure(
            scenario,
            &published,
            &rows,
            &cpu_before,
            &cpu_after,
            rss_mb,
        ))
    }

    async fn clear_keys(&self) -> anyhow::Result<()> {
        clear_keys(&self.redis, self.prefix).await
    }

    async fn seed(&self, scenario: &Scenario) -> anyhow::Result<Vec<Uuid>> {
        let store = Store::connect(&StoreOptions::new(&self.database_url)).await?;
        let areas: Vec<NewArea> = (0..AREAS)
            .map(|index| NewArea {
                id: Uuid::new_v4(),
                name: format!("bench area {index}"),
                enabled: true,
            })
            .collect();
        let config = match scenario.service {
            Service::Webhook => json!({"url": self.receiver.hook_url()}),
            Service::Noop => json!({}),
        };
        let reactions: Vec<NewReaction> = areas
            .iter()
            .flat_map(|area| {
                (0..scenario.reactions_per_area).map(|position| NewReaction {
                    id: Uuid::new_v4(),
                    area_id: area.id,
                    service: scenario.service.name().into(),
                    config: config.clone(),
                    enabled: true,
                    position: position as i32,
                })
            })
            .collect();
        store
            .insert_areas(&areas, &reactions)
            .await
            .context("seed the bench AREAs")?;
        Ok(areas.iter().map(|area| area.id).collect())
    }

    async fn start_worker(&self, scenario: &str) -> anyhow::Result<WorkerProcess> {
        let log_path = self
            .binary
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("area-bench-worker-{scenario}.log"));
        let log = std::fs::File::create(&log_path).context("create the worker log")?;
        let mut command = Command::new(&self.binary);
        command
            .arg("run")
            .env("DATABASE_URL", &self.database_url)
            .env("REDIS_URL", &self.redis_url)
            .env("AREA_STREAM_PREFIX", self.prefix)
            .env("AREA_API_ADDR", "127.0.0.1:0")
            .env("AREA_WEBHOOK_ALLOW", "127.0.0.1")
            .env("AREA_CONSUMER", "bench-worker")
            .env_remove("AREA_SMTP_HOST")
            .env_remove("AREA_SLACK_TOKEN")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        for (key, value) in &self.worker_env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("start {}", self.binary.display()))?;
        let pid = child.id().context("the worker exited at once")?;
        let worker = WorkerProcess {
            child,
            pid,
            log_path,
        };
        self.wait_ready(&worker).await?;
        Ok(worker)
    }

    /// Waits until the worker has created its groups: it reads from then on.
    async fn wait_ready(&self, worker: &WorkerProcess) -> anyhow::Result<()> {
        let started = Instant::now();
        let jobs = self.redis.keys().jobs("webhook");
        loop {
            let info = self.redis.stream_info(&jobs).await?;
            if !info.groups.is_empty() {
                return Ok(());
            }
            ensure!(
                started.elapsed() < Duration::from_secs(30),
                "the worker did not start within 30 s; see {}",
                worker.log_path.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Publishes `count` events as fast as pipelines allow; returns each one's
    /// publish time in microseconds since the epoch.
    pub async fn publish_max(
        &self,
        id_prefix: &str,
        areas: &[Uuid],
        count: usize,
    ) -> anyhow::Result<Vec<i64>> {
        let mut published = Vec::with_capacity(count);
        for start in (0..count).step_by(PUBLISH_CHUNK) {
            let end = (start + PUBLISH_CHUNK).min(count);
            published.extend(self.publish_range(id_prefix, areas, start..end).await?);
        }
        Ok(published)
    }

    async fn publish_paced(
        &self,
        areas: &[Uuid],
        per_s: f64,
        duration: Duration,
    ) -> anyhow::Result<Vec<i64>> {
        let total = (per_s * duration.as_secs_f64()) as usize;
        let mut published = Vec::with_capacity(total);
        let started = Instant::now();
        while published.len() < total {
            let due = ((per_s * started.elapsed().as_secs_f64()) as usize).min(total);
            if due > published.len() {
                let range = published.len()..due;
                published.extend(self.publish_range(MEASURED, areas, range).await?);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(published)
    }

    async fn publish_range(
        &self,
        id_prefix: &str,
        areas: &[Uuid],
        range: std::ops::Range<usize>,
    ) -> anyhow::Result<Vec<i64>> {
        let stream = self.redis.keys().events();
        let mut pipeline = redis::pipe();
        for index in range.clone() {
            pipeline
                .cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg(area_stream::EVENT_FIELD)
                .arg(event_json(id_prefix, index, areas[index % areas.len()]))
                .ignore();
        }
        let at = now_micros();
        let mut connection = self.redis.connection();
        pipeline
            .query_async::<()>(&mut connection)
            .await
            .context("publish events")?;
        Ok(vec![at; range.len()])
    }

    /// Waits until every event is acknowledged and every job finished.
    async fn wait_drained(&self, jobs: &str, worker: &WorkerProcess) -> anyhow::Result<()> {
        let started = Instant::now();
        let events = self.redis.keys().events();
        loop {
            if self.is_drained(&events, jobs).await? {
                return Ok(());
            }
            if started.elapsed() > self.timeout {
                bail!(
                    "the worker did not finish within {:?}; see {}",
                    self.timeout,
                    worker.log_path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn is_drained(&self, events: &str, jobs: &str) -> anyhow::Result<bool> {
        let event_info = self.redis.stream_info(events).await?;
        let events_done = event_info
            .groups
            .iter()
            .all(|group| group.pending == 0 && group.lag == Some(0));
        if !events_done || event_info.groups.is_empty() {
            return Ok(false);
        }
        let mut connection = self.redis.connection();
        let (jobs_left, retries): (u64, u64) = redis::pipe()
            .cmd("XLEN")
            .arg(jobs)
            .cmd("ZCARD")
            .arg(self.redis.keys().retries())
            .query_async(&mut connection)
            .await?;
        Ok(jobs_left == 0 && retries == 0)
    }

    /// Checks that every measured execution is `ok`, and returns each one's
    /// event index, finish time and attempt count.
    async fn settled_rows(&self, expected: usize) -> anyhow::Result<Vec<SettledRow>> {
        let rows: Vec<SettledRow> = load(
            &self.database_url,
            &format!(
                "SELECT event_id, status, attempt::int8 AS attempt,
                        (extract(epoch FROM finished_at) * 1000000)::int8 AS finished_us
                 FROM executions WHERE event_id LIKE '{MEASURED}%'"
            ),
        )
        .await?;
        ensure!(
            rows.len() == expected,
            "{} measured execution rows, expected {expected}",
            rows.len()
        );
        let not_ok = rows.iter().filter(|row| row.status != "ok").count();
        ensure!(not_ok == 0, "{not_ok} measured executions are not ok");
        Ok(rows)
    }

    async fn webhook_attempts(&self) -> anyhow::Result<i64> {
        #[derive(QueryableByName)]
        struct Sum {
            #[diesel(sql_type = BigInt)]
            attempts: i64,
        }
        let sums: Vec<Sum> = load(
            &self.database_url,
            "SELECT COALESCE(sum(attempt), 0)::int8 AS attempts FROM executions
             WHERE service = 'webhook'",
        )
        .await?;
        Ok(sums.first().map_or(0, |sum| sum.attempts))
    }
}

#[derive(QueryableByName)]
struct SettledRow {
    #[diesel(sql_type = Text)]
    event_id: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    attempt: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    finished_us: Option<i64>,
}

fn measure(
    scenario: &Scenario,
    published: &[i64],
    rows: &[SettledRow],
    cpu_before: &CpuReading,
    cpu_after: &CpuReading,
    rss_mb: f64,
) -> Measured {
    let mut latencies: Vec<f64> = Vec::with_capacity(rows.len());
    let mut last_finish = i64::MIN;
    for row in rows {
        let index: usize = row.event_id[MEASURED.len()..]
            .parse()
            .expect("measured event ids are bench-<index>");
        let finished = row.finished_us.unwrap_or(i64::MAX);
        latencies.push((finished - published[index]) as f64 / 1000.0);
        last_finish = last_finish.max(finished);
    }
    latencies.sort_by(f64::total_cmp);
    let first_publish = published.iter().copied().min().unwrap_or(0);
    let seconds = ((last_finish - first_publish) as f64 / 1e6).max(1e-6);
    let cpu = ["worker", "redis", "postgres", "receiver", "bench"]
        .map(|name| cpu_after.since(cpu_before, name));
    Measured {
        name: scenario.name.clone(),
        executions: rows.len(),
        per_s: rows.len() as f64 / seconds,
        offered_per_s: match scenario.pace {
            Pace::Max => None,
            Pace::Rate { per_s, .. } => Some(per_s * scenario.reactions_per_area as f64),
        },
        latency_ms: [
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0),
        ],
        rss_mb,
        cpu,
        seconds,
        retries: rows.iter().map(|row| row.attempt - 1).sum(),
    }
}

/// The `p` quantile of sorted values, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The event `<prefix><index>` for `area`, as producers publish it.
pub fn event_json(id_prefix: &str, index: usize, area: Uuid) -> String {
    const USERS: [&str; 4] = ["ada", "linus", "grace", "ken"];
    json!({
        "id": format!("{id_prefix}{index}"),
        "area_id": area,
        "action": "github.push",
        "occurred_at": "2026-12-01T12:00:00Z",
        "payload": {"repo": format!("repo-{}", index % 7), "user": USERS[index % USERS.len()]},
    })
    .to_string()
}

/// Microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as i64
}

/// A running worker; killed if dropped before [`WorkerProcess::stop`].
pub struct WorkerProcess {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// Where its log goes.
    pub log_path: PathBuf,
}

impl WorkerProcess {
    /// Sends SIGTERM and waits for a clean exit.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let signaled = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?;
        ensure!(signaled.success(), "cannot send SIGTERM to the worker");
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .context("the worker did not exit within 60 s of SIGTERM")??;
        ensure!(
            status.success(),
            "the worker exited with {status}; see {}",
            self.log_path.display()
        );
        Ok(())
    }
}

impl Bench<'_> {
    /// Starts a worker for the backlog check, which drives it by hand.
    pub async fn start_backlog_worker(&self) -> anyhow::Result<WorkerProcess> {
        self.start_worker("backlog").await
    }

    /// Seeds `service` AREAs of one reaction in a fresh database and key space.
    pub async fn prepare(&self, service: Service) -> anyhow::Result<Vec<Uuid>> {
        recreate_and_migrate(&self.database_url).await?;
        self.clear_keys().await?;
        self.seed(&Scenario {
            name: "prepare".into(),
            service,
            reactions_per_area: 1,
            events: 0,
            pace: Pace::Max,
        })
        .await
    }

    /// Executions `ok` in the scenario database.
    pub async fn ok_count(&self) -> anyhow::Result<i64> {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            count: i64,
        }
        let counts: Vec<Count> = load(
            &self.database_url,
            "SELECT count(*) AS count FROM executions WHERE status = 'ok'",
        )
        .await?;
        Ok(counts.first().map_or(0, |count| count.count))
    }

    /// Deletes every key of the bench's prefix.
    pub async fn cleanup(&self) -> anyhow::Result<()> {
        self.clear_keys().await
    }
}

/// Deletes every key under `prefix`.
pub async fn clear_keys(redis: &Redis, prefix: &str) -> anyhow::Result<()> {
    let mut connection = redis.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await?;
    if !keys.is_empty() {
        redis::cmd("UNLINK")
            .arg(&keys)
            .query_async::<()>(&mut connection)
            .await?;
    }
    Ok(())
}

async fn recreate_and_migrate(database_url: &str) -> anyhow::Result<()> {
    crate::bench::recreate_database(database_url).await
}

async fn load<T>(database_url: &str, query: &str) -> anyhow::Result<Vec<T>>
where
    T: QueryableByName<diesel::pg::Pg> + Send + 'static,
{
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

    let mut connection = AsyncPgConnection::establish(database_url)
        .await
        .context("connect to the bench database")?;
    Ok(diesel::sql_query(query).load(&mut connection).await?)
}
