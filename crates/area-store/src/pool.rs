//! The connection pool that every query borrows from.

use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};

use crate::error::Error;

/// How to reach PostgreSQL and how many connections to keep.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// `postgres://user@host:port/database`.
    pub url: String,
    /// Largest number of pooled connections.
    pub max_connections: usize,
    /// How long a query may wait for a free connection.
    pub acquire_timeout: Duration,
}

impl StoreOptions {
    /// Options for `url` with defaults sized for one worker process.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool<AsyncPgConnection>,
    acquire_timeout: Duration,
}

impl Store {
    /// Builds the pool and checks that one connection can be made.
    pub async fn connect(options: &StoreOptions) -> Result<Self, Error> {
        let store = Self::lazy(options)?;
        store.ping().await?;
        Ok(store)
    }

    /// Builds the pool without connecting; connections are made on first use, so a
    /// worker can start while PostgreSQL is still coming up.
    pub fn lazy(options: &StoreOptions) -> Result<Self, Error> {
        // Fast recycling still refuses connections left inside a transaction or
        // marked broken; a dead connection is found by the query that uses it, and
        // that query's error is transient, so the caller retries.
        let mut manager_config = ManagerConfig::default();
        manager_config.recycling_method = RecyclingMethod::Fast;
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
            options.url.clone(),
            manager_config,
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections)
            .build()
            .map_err(|error| Error::Pool(error.to_string()))?;
        Ok(Self {
            pool,
            acquire_timeout: options.acquire_timeout,
        })
    }

    /// Runs a trivial query: PostgreSQL answers.
    pub async fn ping(&self) -> Result<(), Error> {
        use diesel_async::RunQueryDsl;

        let mut connection = self.connection().await?;
        diesel::sql_query("SELECT 1")
            .execute(&mut connection)
            .await?;
        Ok(())
    }

    pub(crate) async fn connection(&self) -> Result<Object<AsyncPgConnection>, Error> {
        // The pool has no timer of its own without a runtime feature; a timeout
        // here bounds both waiting for a free connection and creating one.
        match tokio::time::timeout(self.acquire_timeout, self.pool.get()).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(Error::Pool(error.to_string())),
            Err(_) => Err(Error::Pool(format!(
                "no connection within {:?}",
                self.acquire_timeout
            ))),
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        formatter
            .debug_struct("Store")
            .field("size", &status.size)
            .field("available", &status.available)
            .finish()
    }
}
