//! Creating the database and applying the embedded migrations.
//!
//! Diesel's migration harness is synchronous, so it runs on a blocking thread
//! through diesel-async's connection wrapper: no libpq is linked.

use diesel::prelude::*;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use url::Url;

use crate::error::Error;

/// The SQL files of `migrations/`, compiled into the binary.
const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// The database name of a `postgres://` URL.
pub fn database_name(database_url: &str) -> Result<String, Error> {
    let url = Url::parse(database_url).map_err(|error| Error::InvalidUrl(error.to_string()))?;
    let name = url.path().trim_start_matches('/');
    if name.is_empty() {
        return Err(Error::InvalidUrl("the URL names no database".into()));
    }
    Ok(name.to_owned())
}

/// Creates the database named by `database_url` when it does not exist, by
/// connecting to the server's `postgres` database. Returns whether it was created.
pub async fn create_database_if_missing(database_url: &str) -> Result<bool, Error> {
    let name = database_name(database_url)?;
    let mut admin_url =
        Url::parse(database_url).map_err(|error| Error::InvalidUrl(error.to_string()))?;
    admin_url.set_path("/postgres");
    let mut connection = AsyncPgConnection::establish(admin_url.as_str())
        .await
        .map_err(Error::Connect)?;

    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let found: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<diesel::sql_types::Text, _>(&name)
            .get_result(&mut connection)
            .await?;
    if found.exists {
        return Ok(false);
    }

    let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    match diesel::sql_query(statement).execute(&mut connection).await {
        Ok(_) => Ok(true),
        // Another process created it between our check and our statement.
        Err(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("already exists") =>
        {
            Ok(false)
        }
        Err(error) => Err(error.into()),
    }
}

/// The migration harness's connection is synchronous: runs `work` on one to
/// `database_url` in a blocking task, its errors reported as migration errors.
async fn with_migration_connection<T, F>(database_url: &str, work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce(&mut AsyncConnectionWrapper<AsyncPgConnection>) -> diesel::migration::Result<T>
        + Send
        + 'static,
{
    let url = database_url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut connection =
            <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)
                .map_err(Error::Connect)?;
        work(&mut connection).map_err(|error| Error::Migration(error.to_string()))
    })
    .await
    .map_err(|error| Error::Migration(format!("migration task failed: {error}")))?
}

/// Applies pending migrations; returns the versions applied (none when up to date).
pub async fn run_migrations(database_url: &str) -> Result<Vec<String>, Error> {
    with_migration_connection(database_url, |connection| {
        let applied = connection.run_pending_migrations(MIGRATIONS)?;
        Ok(applied.iter().map(ToString::to_string).collect())
    })
    .await
}

/// The embedded migrations not yet applied to the database (all of them when
/// the schema was never created), oldest first.
pub async fn pending_migrations(database_url: &str) -> Result<Vec<String>, Error> {
    with_migration_connection(database_url, |connection| {
        let pending = connection.pending_migrations(MIGRATIONS)?;
        Ok(pending
            .iter()
            .map(|migration| migration.name().version().to_string())
            .collect())
    })
    .await
}
