//! The shared connection used for publishing and acknowledging, and the options
//! that every connection of the worker is made with.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::Error;
use crate::keys::StreamKeys;

/// How to reach Redis and name things there.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// `redis://host:port/db`.
    pub url: String,
    /// Key names.
    pub keys: StreamKeys,
    /// The consumer group every worker joins.
    pub group: String,
    /// How long a blocking read waits for new entries before returning empty.
    pub block: Duration,
}

impl RedisOptions {
    /// Options for `url` with the default keys and group.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            keys: StreamKeys::default(),
            group: "area-workers".into(),
            block: Duration::from_millis(1000),
        }
    }
}

/// A handle on Redis for everything but blocking reads; cheap to clone.
#[derive(Clone)]
pub struct Redis {
    pub(crate) client: redis::Client,
    pub(crate) connection: ConnectionManager,
    pub(crate) options: RedisOptions,
}

impl Redis {
    /// Connects, and keeps reconnecting in the background when the connection drops.
    pub async fn connect(options: RedisOptions) -> Result<Self, Error> {
        let client = redis::Client::open(options.url.as_str())?;
        let connection = manager(&client, Duration::from_secs(5)).await?;
        Ok(Self {
            client,
            connection,
            options,
        })
    }

    /// The options this handle was made with.
    pub fn options(&self) -> &RedisOptions {
        &self.options
    }

    /// The key names.
    pub fn keys(&self) -> &StreamKeys {
        &self.options.keys
    }

    /// The consumer group every worker joins.
    pub fn group(&self) -> &str {
        &self.options.group
    }

    /// Sends PING.
    pub async fn ping(&self) -> Result<(), Error> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await?;
        Ok(())
    }

    /// Creates `stream` and the worker group on it, reading from the start, when
    /// they do not exist. Returns whether the group was created.
    pub async fn ensure_group(&self, stream: &str) -> Result<bool, Error> {
        let mut connection = self.connection.clone();
        let created = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(&self.options.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async::<()>(&mut connection)
            .await;
        match created {
            Ok(()) => Ok(true),
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// A clone of the shared connection for commands outside this crate.
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }
}

/// A reconnecting connection whose replies may take up to `response_timeout`.
pub(crate) async fn manager(
    client: &redis::Client,
    response_timeout: Duration,
) -> Result<ConnectionManager, Error> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(response_timeout))
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2))
        .set_number_of_retries(2);
    Ok(ConnectionManager::new_with_config(client.clone(), config).await?)
}
