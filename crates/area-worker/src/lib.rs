//! The AREA reaction worker as a library: the engine, the REST API and the
//! wiring that `main` and the end-to-end tests share.
//!
//! [`run`] takes its listener and shutdown token as arguments so that a test can
//! start a whole worker in-process, on port 0, with reactions of its choosing.

pub mod api;
pub mod config;
pub mod engine;
#[cfg(feature = "noop")]
pub mod noop;
pub mod reactions;
pub mod telemetry;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use area_core::{DecodeLimits, Registry};
use area_store::{Store, StoreOptions};
use area_stream::{Redis, RedisOptions, StreamKeys};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use engine::{Engine, EngineSettings, EngineState};

/// Installs ring as the process's TLS crypto provider. Every TLS client of the
/// worker uses ring; installing it once avoids a run-time panic when two crates
/// would pick different providers.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs the worker until `shutdown` fires, then drains and returns.
pub async fn run(
    config: Config,
    registry: Registry,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if registry.is_empty() {
        anyhow::bail!("this binary has no reaction compiled in");
    }
    for warning in config.check().map_err(anyhow::Error::msg)? {
        tracing::warn!("{warning}");
    }
    let settings = engine_settings(&config)?;
    let api_addr = listener.local_addr().context("read the API address")?;
    let access = api::MutationAccess::new(
        config
            .resolve_api_token()
            .map_err(anyhow::Error::msg)?
            .as_ref(),
        api_addr,
    );
    // Installed before the engine starts, so that its first counts are kept.
    let metrics = api::metrics::handle();
    tracing::info!(
        worker = %settings.worker,
        services = ?registry.services(),
        concurrency = settings.concurrency,
        api = %api_addr,
        "starting"
    );
    match access {
        api::MutationAccess::Refused => tracing::warn!("{}", access.describe(api_addr)),
        _ => tracing::info!("{}", access.describe(api_addr)),
    }

    check_schema(&config.database_url).await?;
    let store = Store::lazy(&store_options(&config)).context("build the database pool")?;
    let redis = connect_redis(&config, &shutdown).await?;
    let state = Arc::new(EngineState::default());
    let (worker, decode_limits) = (settings.worker.clone(), settings.decode_limits);
    let engine = Engine::start(
        store.clone(),
        redis.clone(),
        registry.clone(),
        settings,
        state.clone(),
        shutdown.clone(),
    )
    .await?;
    state.set_ready(true);
    tokio::spawn(report_pending_elsewhere(
        redis.clone(),
        worker.clone(),
        Duration::from_millis(config.claim_idle_ms),
    ));

    let mut api_state = api::ApiState::new(store, redis, registry, state.clone(), worker);
    api_state.access = access;
    api_state.metrics = metrics;
    api_state.decode_limits = decode_limits;
    let api_shutdown = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, api::router(api_state))
            .with_graceful_shutdown(async move { api_shutdown.cancelled().await })
            .await
    });

    shutdown.cancelled().await;
    state.set_ready(false);
    engine
        .drain(Duration::from_millis(config.drain_timeout_ms))
        .await;
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(error = %error, "the API server stopped with an error"),
        Err(error) => tracing::warn!(error = %error, "the API server task failed"),
    }
    Ok(())
}

/// Says at startup how many entries other consumers of the group hold, and
/// when this worker may claim them, so that taking over from a killed
/// worker is not a silent minute. Entries of a live worker are in flight
/// there and are only claimed if they stay idle as long.
async fn report_pending_elsewhere(redis: Redis, worker: String, claim_idle: Duration) {
    let mut streams = vec![redis.keys().events()];
    match redis.job_streams().await {
        Ok(jobs) => streams.extend(jobs),
        Err(error) => {
            tracing::debug!(error = %error, "cannot list the job streams for the startup report");
        }
    }
    let claim_idle_ms = u64::try_from(claim_idle.as_millis()).unwrap_or(u64::MAX);
    for stream in streams {
        let info = match redis.stream_info(&stream).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(stream, error = %error, "cannot read the stream for the startup report");
                continue;
            }
        };
        for group in info
            .groups
            .iter()
            .filter(|group| group.name == redis.group())
        {
            let holders: Vec<_> = group
                .consumers
                .iter()
                .filter(|consumer| consumer.name != worker && consumer.pending > 0)
                .collect();
            let Some(least_idle) = holders.iter().map(|consumer| consumer.idle_ms).min() else {
                continue;
            };
            let entries: u64 = holders.iter().map(|consumer| consumer.pending).sum();
            tracing::info!(
                stream,
                entries,
                consumers = holders.len(),
                claimable_within_ms = claim_idle_ms.saturating_sub(least_idle),
                "entries are pending on other consumers; those a stopped worker left are claimed \
                 here once idle for AREA_CLAIM_IDLE_MS, and an execution it left running is taken \
                 over once its lease (AREA_LEASE_MS) has run out"
            );
        }
    }
}

/// Refuses to start on a database without the current schema, naming the
/// command that fixes it; a database that cannot be reached yet is only
/// reported, since the engine waits for it like for any outage.
async fn check_schema(database_url: &str) -> anyhow::Result<()> {
    match area_store::pending_migrations(database_url).await {
        Ok(pending) if pending.is_empty() => Ok(()),
        Ok(pending) => anyhow::bail!(
            "the database lacks {} migration(s) ({}): run `area-worker migrate` first",
            pending.len(),
            pending.join(", ")
        ),
        Err(area_store::Error::Connect(error)) => {
            tracing::warn!(
                error = %error,
                "cannot reach PostgreSQL yet; the worker keeps trying and /readyz says not ready"
            );
            Ok(())
        }
        Err(error) => {
            tracing::warn!(error = %error, "cannot check the database schema");
            Ok(())
        }
    }
}

/// The engine's settings from the configuration.
pub fn engine_settings(config: &Config) -> anyhow::Result<EngineSettings> {
    Ok(EngineSettings {
        worker: config.consumer_name(),
        concurrency: config.concurrency,
        batch_size: config.batch_size,
        retry_policy: config.retry_policy()?,
        reaction_timeout: Duration::from_millis(config.reaction_timeout_ms),
        lease: Duration::from_millis(config.lease_ms),
        claim_idle: Duration::from_millis(config.claim_idle_ms),
        max_deliveries: config.max_deliveries,
        fail_in_doubt: config.in_doubt_policy == config::InDoubtPolicy::Fail,
        decode_limits: DecodeLimits {
            max_bytes: config.max_event_bytes,
            max_depth: 64,
        },
        scheduler_tick: Duration::from_millis(config.scheduler_tick_ms),
        direct_run: config.direct_run,
    })
}

/// The database options from the configuration.
pub fn store_options(config: &Config) -> StoreOptions {
    let mut options = StoreOptions::new(&config.database_url);
    options.max_connections = config.db_pool_size;
    options
}

/// The Redis options from the configuration.
pub fn redis_options(config: &Config) -> RedisOptions {
    let mut options = RedisOptions::new(&config.redis_url);
    options.keys = StreamKeys::new(&config.stream_prefix);
    options.group = config.group.clone();
    options.block = Duration::from_millis(config.block_ms);
    options
}

/// Connects to Redis, retrying with capped backoff until it answers or
/// `shutdown` fires.
async fn connect_redis(config: &Config, shutdown: &CancellationToken) -> anyhow::Result<Redis> {
    let mut delay = Duration::from_millis(100);
    loop {
        match Redis::connect(redis_options(config)).await {
            Ok(redis) => return Ok(redis),
            Err(error) => {
                tracing::warn!(error = %error, "cannot reach redis yet, retrying");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => anyhow::bail!("shut down before redis answered"),
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
