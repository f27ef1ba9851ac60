//! `area-worker`: run the worker, apply migrations, publish an event, show a
//! running worker's status.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use area_worker::config::Overrides;
use area_worker::telemetry::{self, LogFormat};
use area_worker::{Config, reactions};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// mimalloc rather than glibc's malloc: allocation was a fifth of the worker's
/// CPU under load, most of it in glibc's free lists (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "area-worker",
    version,
    about = "Runs AREA reactions from Redis Streams"
)]
struct Cli {
    /// Log format.
    #[arg(long, env = "AREA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker until SIGTERM or SIGINT.
    Run(Box<RunArgs>),
    /// Print the effective configuration (defaults, file, environment, flags)
    /// with secrets redacted, and check it.
    Config(Box<RunArgs>),
    /// Create the database if missing and apply pending migrations.
    Migrate {
        /// PostgreSQL.
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/area"
        )]
        database_url: String,
    },
    /// List or redrive dead letters.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
    /// Publish one event (its JSON) to the event stream.
    Publish {
        /// The event as JSON, e.g. '{"area_id": "..."}'.
        event: String,
        /// Redis.
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
        /// Key prefix.
        #[arg(long, env = "AREA_STREAM_PREFIX", default_value = "area:")]
        stream_prefix: String,
    },
    /// Print the status and execution statistics of a running worker.
    Status {
        /// The worker's API, e.g. `http://127.0.0.1:8080`.
        #[arg(long, env = "AREA_API_URL", default_value = "http://127.0.0.1:8080")]
        api_url: String,
    },
}

/// Where `run` and `config` take their configuration from.
#[derive(clap::Args)]
struct RunArgs {
    /// A TOML file of settings (see area-worker.example.toml); the environment
    /// and flags override it.
    #[arg(long, env = "AREA_CONFIG")]
    config: Option<PathBuf>,

    #[command(flatten)]
    flags: Overrides,
}

impl RunArgs {
    fn load(&self) -> anyhow::Result<Config> {
        let served = reactions::setting_prefixes();
        let served: Vec<&str> = served.iter().map(String::as_str).collect();
        let absent = reactions::absent_setting_prefixes();
        let absent: Vec<&str> = absent.iter().map(String::as_str).collect();
        Ok(Config::load(
            self.config.as_deref(),
            &self.flags,
            &served,
            &absent,
        )?)
    }
}

#[derive(Subcommand)]
enum DeadLetterCommand {
    /// Print dead letters, oldest first, one JSON object per line.
    List {
        /// Start after this dead-letter id.
        #[arg(long)]
        after: Option<String>,
        /// How many at most.
        #[arg(long, default_value_t = 100)]
        count: usize,
        #[command(flatten)]
        redis: RedisArgs,
    },
    /// Re-publish dead letters to the stream they came from and remove them.
    Redrive {
        /// Dead-letter ids, as listed.
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        redis: RedisArgs,
    },
}

#[derive(clap::Args)]
struct RedisArgs {
    /// Redis.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Key prefix.
    #[arg(long, env = "AREA_STREAM_PREFIX", default_value = "area:")]
    stream_prefix: String,
}

/// Errors end the process with status 1 and one readable line (the cause
/// chain), whatever `RUST_BACKTRACE` says: an operator wants the reason, not
/// a stack.
fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    area_worker::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run(args.load()?).await,
            Command::Config(args) => show_config(&args.load()?),
            Command::Migrate { database_url } => migrate(&database_url).await,
            Command::Publish {
                event,
                redis_url,
                stream_prefix,
            } => publish(&event, &redis_url, &stream_prefix).await,
            Command::Status { api_url } => {
                print!(
                    "{}",
                    area_worker::api::client::status_report(&api_url).await?
                );
                Ok(())
            }
            Command::DeadLetters(command) => dead_letters(command).await,
        }
    })
}

async fn run(config: Config) -> anyhow::Result<()> {
    let registry = reactions::registry_from_config(&config)?;
    let listener = tokio::net::TcpListener::bind(config.api_addr)
        .await
        .with_context(|| format!("listen on {}", config.api_addr))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    area_worker::run(config, registry, listener, shutdown).await
}

fn show_config(config: &Config) -> anyhow::Result<()> {
    print!("{}", config.to_redacted_toml());
    for warning in config.check().map_err(anyhow::Error::msg)? {
        eprintln!("warning: {warning}");
    }
    config.resolve_api_token().map_err(anyhow::Error::msg)?;
    reactions::registry_from_config(config).context("check the reactions' settings")?;
    Ok(())
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT.
async fn signal_shutdown(shutdown: CancellationToken) {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(error = %error, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
                shutdown.cancel();
                return;
            }
        };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("signal received");
    shutdown.cancel();
}

async fn migrate(database_url: &str) -> anyhow::Result<()> {
    let name = area_store::database_name(database_url)?;
    if area_store::create_database_if_missing(database_url)
        .await
        .context("create the database")?
    {
        tracing::info!(database = %name, "database created");
    }
    let applied = area_store::run_migrations(database_url)
        .await
        .context("apply migrations")?;
    tracing::info!(database = %name, applied = applied.len(), "migrations up to date");
    Ok(())
}

async fn publish(event: &str, redis_url: &str, prefix: &str) -> anyhow::Result<()> {
    // Refused here with the reason, as the API does, rather than published
    // and dead-lettered later. The default limits: the worker's may differ.
    area_core::Event::decode(event.as_bytes(), "0-0", area_core::DecodeLimits::default())
        .context("not a valid event")?;
    let redis = connect_redis(redis_url, prefix).await?;
    let id = redis
        .publish_event(event)
        .await
        .context("publish the event")?;
    println!("{id}");
    Ok(())
}

async fn dead_letters(command: DeadLetterCommand) -> anyhow::Result<()> {
    match command {
        DeadLetterCommand::List {
            after,
            count,
            redis,
        } => {
            let redis = connect_redis(&redis.redis_url, &redis.stream_prefix).await?;
            let letters = redis
                .dead_letters(after.as_deref(), count)
                .await
                .context("list dead letters")?;
            for letter in letters {
                println!("{}", serde_json::to_string(&letter)?);
            }
        }
        DeadLetterCommand::Redrive { ids, redis } => {
            let redis = connect_redis(&redis.redis_url, &redis.stream_prefix).await?;
            let mut missing = 0;
            for id in ids {
                match redis
                    .redrive(&id)
                    .await
                    .with_context(|| format!("redrive {id}"))?
                {
                    Some(new_id) => println!("{id} -> {new_id}"),
                    None => {
                        eprintln!("{id}: no such dead letter");
                        missing += 1;
                    }
                }
            }
            anyhow::ensure!(missing == 0, "{missing} dead letter(s) not found");
        }
    }
    Ok(())
}

async fn connect_redis(redis_url: &str, prefix: &str) -> anyhow::Result<area_stream::Redis> {
    let mut options = area_stream::RedisOptions::new(redis_url);
    options.keys = area_stream::StreamKeys::new(prefix);
    tokio::time::timeout(
        Duration::from_secs(10),
        area_stream::Redis::connect(options),
    )
    .await
    .context("connect to redis: timed out")?
    .context("connect to redis")
}
