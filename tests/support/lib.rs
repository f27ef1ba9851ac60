//! Shared harness of the end-to-end tests: an isolated database and key prefix
//! per test, a loopback HTTP receiver with scripted answers, and an in-process
//! worker.
//!
//! Each test gets a database of its own (`area_test_<uuid>`, dropped when the
//! [`TestEnv`] is dropped) and a Redis key prefix of its own, so tests run in
//! parallel and leave nothing behind. A service that cannot be reached fails
//! the test with the URL tried and how to start the service.

pub mod process;
pub mod receiver;
pub mod slack;
pub mod smtp;
pub mod worker;

use std::time::Duration;

use anyhow::{Context, bail};
use area_store::{NewArea, NewReaction, Store, StoreOptions};
use area_stream::{Redis, RedisOptions, StreamKeys};
use serde_json::Value;
use uuid::Uuid;

pub use process::{PrivatePostgres, PrivateRedis, WorkerProcess};
pub use receiver::{ReceivedRequest, Receiver};
pub use slack::{FakeSlack, SlackPost};
pub use smtp::SmtpSink;
pub use worker::{TestWorker, WorkerOptions};

/// The server-level URLs the tests use.
pub fn database_server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/area".into())
}

/// Redis.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// An isolated database and Redis key prefix.
pub struct TestEnv {
    /// The test's own database URL.
    pub database_url: String,
    /// The test's own key prefix.
    pub prefix: String,
    /// A handle on the test's database.
    pub store: Store,
    /// A handle on Redis under the test's prefix.
    pub redis: Redis,
    /// The Redis server's URL.
    pub redis_url: String,
    database_name: String,
    server_url: String,
}

impl TestEnv {
    /// Creates and migrates a database of the test's own on the shared servers.
    pub async fn new() -> anyhow::Result<Self> {
        Self::on_servers(&database_server_url(), &redis_url()).await
    }

    /// As [`TestEnv::new`], on the given PostgreSQL server and Redis.
    pub async fn on_servers(server_url: &str, redis_url: &str) -> anyhow::Result<Self> {
        area_worker::install_crypto_provider();
        // RUST_LOG=area_worker=debug shows the in-process workers' logs.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let id = Uuid::new_v4().simple().to_string();
        let database_name = format!("area_test_{id}");
        let mut url = url::Url::parse(server_url).context("parse DATABASE_URL")?;
        url.set_path(&format!("/{database_name}"));
        let database_url = url.to_string();

        area_store::create_database_if_missing(&database_url)
            .await
            .with_context(|| {
                format!(
                    "cannot create a test database at {}: is PostgreSQL running? \
                 (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)",
                    server_url
                )
            })?;
        area_store::run_migrations(&database_url)
            .await
            .context("migrate the test database")?;
        let store = Store::connect(&StoreOptions::new(&database_url)).await?;

        let prefix = format!("test:{id}:");
        let mut options = RedisOptions::new(redis_url);
        options.keys = StreamKeys::new(&prefix);
        let redis = tokio::time::timeout(Duration::from_secs(5), Redis::connect(options))
            .await
            .ok()
            .and_then(Result::ok)
            .with_context(|| {
                format!(
                    "cannot reach Redis at {}: is it running? (redis-server --daemonize yes --port 6379)",
                    redis_url
                )
            })?;
        Ok(Self {
            database_url,
            prefix,
            store,
            redis,
            redis_url: redis_url.to_owned(),
            database_name,
            server_url: server_url.to_owned(),
        })
    }

    /// Creates an AREA with the given reactions `(service, config)`, all enabled.
    pub async fn area(&self, reactions: &[(&str, Value)]) -> anyhow::Result<(Uuid, Vec<Uuid>)> {
        let area_id = Uuid::new_v4();
        let rows: Vec<NewReaction> = reactions
            .iter()
            .enumerate()
            .map(|(position, (service, config))| NewReaction {
                id: Uuid::new_v4(),
                area_id,
                service: (*service).to_owned(),
                config: config.clone(),
                enabled: true,
                position: position as i32,
            })
            .collect();
        let ids = rows.iter().map(|row| row.id).collect();
        let area = NewArea {
            id: area_id,
            name: "test".into(),
            enabled: true,
        };
        self.store.insert_areas(&[area], &rows).await?;
        Ok((area_id, ids))
    }

    /// Inserts AREAs and reactions as given.
    pub async fn insert(&self, areas: &[NewArea], reactions: &[NewReaction]) -> anyhow::Result<()> {
        Ok(self.store.insert_areas(areas, reactions).await?)
    }

    /// Publishes an event's JSON text; returns the entry id.
    pub async fn publish(&self, event: &Value) -> anyhow::Result<String> {
        Ok(self.redis.publish_event(&event.to_string()).await?)
    }

    /// Publishes an entry with raw fields to the event stream.
    pub async fn publish_raw(&self, fields: &[(&str, &[u8])]) -> anyhow::Result<String> {
        Ok(self
            .redis
            .publish_fields(&self.redis.keys().events(), fields)
            .await?)
    }

    /// Number of entries still pending in the worker group for `stream`.
    pub async fn pending(&self, stream: &str) -> anyhow::Result<u64> {
        let mut connection = self.redis.connection();
        let reply: redis::Value = redis::cmd("XPENDING")
            .arg(stream)
            .arg(&self.redis.options().group)
            .query_async(&mut connection)
            .await?;
        match reply {
            redis::Value::Array(items) => match items.first() {
                Some(redis::Value::Int(count)) => Ok(*count as u64),
                other => bail!("unexpected XPENDING reply {other:?}"),
            },
            other => bail!("unexpected XPENDING reply {other:?}"),
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let name = self.database_name.clone();
        let prefix = self.prefix.clone();
        let server_url = self.server_url.clone();
        let redis_url = self.redis_url.clone();
        // Async work cannot run in Drop; a short-lived runtime on its own thread
        // does it without touching the test's runtime.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let Ok(runtime) = runtime else { return };
            runtime.block_on(async move {
                drop_database(&server_url, &name).await;
                delete_keys(&redis_url, &prefix).await;
            });
        });
        let _ = cleanup.join();
    }
}

async fn drop_database(server_url: &str, name: &str) {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

    let Ok(mut url) = url::Url::parse(server_url) else {
        return;
    };
    url.set_path("/postgres");
    if let Ok(mut connection) = AsyncPgConnection::establish(url.as_str()).await {
        let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        let _ = diesel::sql_query(statement).execute(&mut connection).await;
    }
}

async fn delete_keys(redis_url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url) else {
        return;
    };
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _ = redis::cmd("DEL")
            .arg(&keys)
            .query_async::<()>(&mut connection)
            .await;
    }
}

/// Polls `check` every 20 ms until it returns `Some`, or fails after `limit`
/// with `what` in the message.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
