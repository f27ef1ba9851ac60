//! Real processes for the fault tests: the `area-worker` binary, and private
//! Redis and PostgreSQL servers that a test may stop and restart without
//! disturbing the shared ones other tests use.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use tokio::process::{Child, Command};

use crate::TestEnv;

/// The `area-worker` binary of this build, built once per test process.
pub fn worker_binary() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_worker().map_err(|error| format!("{error:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build_worker() -> anyhow::Result<PathBuf> {
    // The test executable lives in <target>/<profile>/deps; the binary one level up.
    let exe = std::env::current_exe().context("locate the test executable")?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test executable is not in a cargo target directory")?
        .to_path_buf();
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
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        command.arg("--release");
    }
    if let Some(target) = profile_dir.parent() {
        command.env("CARGO_TARGET_DIR", target);
    }
    let status = command
        .status()
        .context("run cargo build for area-worker")?;
    ensure!(status.success(), "building area-worker failed");
    Ok(profile_dir.join("area-worker"))
}

/// A free TCP port on 127.0.0.1 (free when asked; good enough for tests).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A worker running as its own process.
pub struct WorkerProcess {
    child: Child,
    /// Its log file.
    pub log_path: PathBuf,
}

impl WorkerProcess {
    /// Starts `area-worker run` on `env`'s database and prefix with test-friendly
    /// timings, overridden by `settings` (`AREA_*` variables).
    pub async fn start(
        env: &TestEnv,
        name: &str,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::start_with_urls(
            &env.database_url,
            &env.redis_url,
            &env.prefix,
            name,
            settings,
        )
        .await
    }

    /// As [`WorkerProcess::start`] with explicit URLs (for private servers).
    pub async fn start_with_urls(
        database_url: &str,
        redis_url: &str,
        prefix: &str,
        name: &str,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let binary = worker_binary()?;
        let log_path = std::env::temp_dir().join(format!(
            "area-e2e-{}-{name}.log",
            prefix.trim_end_matches(':').replace(':', "-")
        ));
        let log = std::fs::File::create(&log_path).context("create the worker log")?;
        let mut command = Command::new(binary);
        command
            .arg("run")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("DATABASE_URL", database_url)
            .env("REDIS_URL", redis_url)
            .env("AREA_STREAM_PREFIX", prefix)
            .env("AREA_CONSUMER", name)
            .env("AREA_API_ADDR", "127.0.0.1:0")
            .env("AREA_WEBHOOK_ALLOW", "127.0.0.1")
            .env("AREA_BLOCK_MS", "100")
            .env("AREA_DB_POOL_SIZE", "4");
        for (key, value) in settings {
            command.env(key, value);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("start area-worker")?;
        Ok(Self { child, log_path })
    }

    /// SIGKILL: the process dies on the spot, mid-whatever.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// SIGTERM, then waits up to `limit` for the exit.
    pub async fn terminate(&mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        let pid = self.child.id().context("the worker already exited")?;
        signal(pid, "-TERM")?;
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => bail!(
                "the worker did not exit within {limit:?} of SIGTERM ({})",
                self.log_path.display()
            ),
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

fn signal(pid: u32, which: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args([which, &pid.to_string()])
        .status()?;
    ensure!(status.success(), "kill {which} {pid} failed");
    Ok(())
}

/// A Redis server of the test's own, which keeps its data across restarts.
pub struct PrivateRedis {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts `redis-server` on a free port with a data directory of its own.
    pub async fn start() -> anyhow::Result<Self> {
        let port = free_port()?;
        let dir =
            std::env::temp_dir().join(format!("area-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let mut redis = Self {
            port,
            dir,
            child: None,
        };
        redis.spawn().await?;
        Ok(redis)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Saves the data, stops the server, waits `down_for`, starts it again.
    pub async fn restart(&mut self, down_for: Duration) -> anyhow::Result<()> {
        let client = redis::Client::open(self.url())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        // The server closes the connection instead of answering SHUTDOWN.
        let _ = redis::cmd("SHUTDOWN")
            .arg("SAVE")
            .query_async::<()>(&mut connection)
            .await;
        if let Some(mut child) = self.child.take() {
            child.wait().await?;
        }
        tokio::time::sleep(down_for).await;
        self.spawn().await
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("start redis-server (is Redis installed?)")?;
        self.child = Some(child);
        let client = redis::Client::open(self.url())?;
        for _ in 0..100 {
            if let Ok(mut connection) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "the private redis-server on port {} did not start",
            self.port
        )
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL cluster of the test's own (initdb in a temporary directory),
/// which a test may stop and start.
pub struct PrivatePostgres {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl PrivatePostgres {
    /// Creates and starts a cluster with trust authentication for `postgres`.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = postgres_bin_dir()?;
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("area-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        as_postgres_owner(&dir)?;
        let data = dir.join("data");
        run_as_postgres(
            &bin.join("initdb"),
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
            ],
        )
        .await
        .context("initdb")?;
        let cluster = Self { port, dir, bin };
        cluster.pg_ctl_start().await?;
        Ok(cluster)
    }

    /// A URL for `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server (fast mode: connections are cut), waits, starts it again.
    pub async fn restart(&self, down_for: Duration) -> anyhow::Result<()> {
        self.pg_ctl(&["stop", "-m", "fast", "-w"]).await?;
        tokio::time::sleep(down_for).await;
        self.pg_ctl_start().await
    }

    async fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=100",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log");
        self.pg_ctl(&[
            "start",
            "-w",
            "-o",
            &options,
            "-l",
            &log.display().to_string(),
        ])
        .await
    }

    async fn pg_ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let data = self.dir.join("data");
        let mut all: Vec<&std::ffi::OsStr> = vec!["-D".as_ref(), data.as_os_str()];
        all.extend(args.iter().map(|arg| std::ffi::OsStr::new(*arg)));
        run_as_postgres(&self.bin.join("pg_ctl"), &all).await
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let pg_ctl = self.bin.join("pg_ctl");
        let mut command = postgres_command(&pg_ctl);
        command
            .arg("-D")
            .arg(&data)
            .args(["stop", "-m", "immediate"]);
        let _ = command.stdout(Stdio::null()).stderr(Stdio::null()).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("find PostgreSQL's binaries under /usr/lib/postgresql (is PostgreSQL installed?)")?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort_by_key(|path| {
        path.parent()
            .and_then(Path::file_name)
            .and_then(|name| name.to_str())
            .and_then(|name| name.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .context("no initdb under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|output| output.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// PostgreSQL refuses to run as root: as root, run its tools as `postgres`.
fn postgres_command(program: &Path) -> std::process::Command {
    if is_root() {
        let mut command = std::process::Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        std::process::Command::new(program)
    }
}

fn as_postgres_owner(dir: &Path) -> anyhow::Result<()> {
    if is_root() {
        let status = std::process::Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir)
            .status()?;
        ensure!(
            status.success(),
            "chown {} to postgres failed",
            dir.display()
        );
    }
    Ok(())
}

async fn run_as_postgres(program: &Path, args: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
    let mut command = postgres_command(program);
    command.args(args).current_dir("/tmp");
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    ensure!(
        output.status.success(),
        "{} failed: {}",
        program.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
