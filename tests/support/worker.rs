//! A whole worker started in-process, with test-friendly timings.

use std::net::SocketAddr;

use anyhow::Context;
use area_worker::Config;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::TestEnv;

/// Settings a test may change; the rest are the worker's defaults.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// The configuration the worker runs with.
    pub config: Config,
    /// Extra environment for the reactions (looked up instead of the process's).
    pub reaction_env: Vec<(String, String)>,
}

impl WorkerOptions {
    /// Defaults for `env`: its database and prefix, short block and claim times,
    /// webhooks allowed to reach loopback.
    pub fn for_env(env: &TestEnv) -> Self {
        let mut config = Config::defaults();
        config.redis_url = env.redis_url.clone();
        config.database_url = env.database_url.clone();
        config.stream_prefix = env.prefix.clone();
        config.api_addr = "127.0.0.1:0".parse().expect("a valid socket address");
        config.block_ms = 100;
        config.db_pool_size = 4;
        config.drain_timeout_ms = 5_000;
        config.consumer = Some(format!("test-{}", uuid::Uuid::new_v4().simple()));
        Self {
            config,
            reaction_env: vec![("AREA_WEBHOOK_ALLOW".into(), "127.0.0.1".into())],
        }
    }
}

/// A running in-process worker; shut it down with [`TestWorker::stop`].
pub struct TestWorker {
    /// Where its API listens.
    pub api_addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestWorker {
    /// Starts a worker with `options`.
    pub async fn start(options: WorkerOptions) -> anyhow::Result<Self> {
        let environment = options.reaction_env.clone();
        let lookup = move |name: &str| {
            environment
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        let registry = area_worker::reactions::registry_from_lookup(&lookup)?;
        Self::start_with(options.config, registry).await
    }

    /// Starts a worker with a registry of the test's choosing.
    pub async fn start_with(config: Config, registry: area_core::Registry) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(config.api_addr).await?;
        let api_addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(area_worker::run(
            config,
            registry,
            listener,
            shutdown.clone(),
        ));
        Ok(Self {
            api_addr,
            shutdown,
            task,
        })
    }

    /// Signals shutdown and waits for the drain.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await.context("the worker task panicked")?
    }
}
