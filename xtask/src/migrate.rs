//! `cargo xtask migrate`: create the database when missing, apply migrations.

use anyhow::Context;

/// Options of `migrate`.
#[derive(clap::Args)]
pub struct Args {
    /// PostgreSQL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/area"
    )]
    database_url: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    migrate(&args.database_url).await
}

/// Creates the database if needed and applies pending migrations, saying what it did.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    let name = area_store::database_name(database_url)?;
    let created = area_store::create_database_if_missing(database_url)
        .await
        .with_context(|| format!("create database {name} (is PostgreSQL running?)"))?;
    if created {
        println!("created database {name}");
    }
    let applied = area_store::run_migrations(database_url)
        .await
        .context("apply migrations")?;
    if applied.is_empty() {
        println!("database {name} is up to date");
    } else {
        println!(
            "applied {} migration(s) to {name}: {}",
            applied.len(),
            applied.join(", ")
        );
    }
    Ok(())
}
