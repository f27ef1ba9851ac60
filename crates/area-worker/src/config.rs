//! The worker's configuration: every option is a command-line flag and an
//! environment variable (`AREA_`-prefixed, except the two URLs), with defaults
//! that run against a local Redis and PostgreSQL.

use std::net::SocketAddr;
use std::path::PathBuf;

use area_core::RetryPolicy;
use clap::Args;
use secrecy::SecretString;

/// What to do with an attempt whose outcome is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InDoubtPolicy {
    /// Run it again with the same idempotency key.
    Retry,
    /// Record the execution as failed for a person to look at.
    Fail,
}

/// Options of `area-worker run` (and of the subcommands that need a subset).
#[derive(Clone, Debug, Args)]
pub struct Config {
    /// Redis, including the database number.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// PostgreSQL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/area"
    )]
    pub database_url: String,

    /// Prefix of every Redis key: `<prefix>events`, `<prefix>jobs:<service>`, ...
    #[arg(long, env = "AREA_STREAM_PREFIX", default_value = "area:")]
    pub stream_prefix: String,

    /// The consumer group every worker joins.
    #[arg(long, env = "AREA_GROUP", default_value = "area-workers")]
    pub group: String,

    /// This worker's consumer name; must be unique among live workers.
    /// Defaults to `<hostname>-<pid>`.
    #[arg(long, env = "AREA_CONSUMER")]
    pub consumer: Option<String>,

    /// Where the REST API listens.
    #[arg(long, env = "AREA_API_ADDR", default_value = "127.0.0.1:8080")]
    pub api_addr: SocketAddr,

    /// Bearer token that mutating API routes require. Without one, they are
    /// open on a loopback address and refused on any other. Prefer the
    /// environment (or the file) to the flag, which other users can see.
    #[arg(long, env = "AREA_API_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub api_token: Option<SecretString>,

    /// A file whose first line is the API token, instead of `AREA_API_TOKEN`.
    #[arg(long, env = "AREA_API_TOKEN_FILE", conflicts_with = "api_token")]
    pub api_token_file: Option<PathBuf>,

    /// Reactions in flight per service in this process.
    #[arg(long, env = "AREA_CONCURRENCY", default_value_t = 256)]
    pub concurrency: usize,

    /// Entries read, inserted, claimed or recorded per batch.
    #[arg(long, env = "AREA_BATCH_SIZE", default_value_t = 256)]
    pub batch_size: usize,

    /// How long a blocking stream read waits, in milliseconds.
    #[arg(long, env = "AREA_BLOCK_MS", default_value_t = 1000)]
    pub block_ms: u64,

    /// Delay before the first retry, in milliseconds; doubled for each later one.
    #[arg(long, env = "AREA_RETRY_BASE_MS", default_value_t = 2000)]
    pub retry_base_ms: u64,

    /// Longest wait between two attempts, in milliseconds.
    #[arg(long, env = "AREA_RETRY_CAP_MS", default_value_t = 3_600_000)]
    pub retry_cap_ms: u64,

    /// Retries after the first attempt.
    #[arg(long, env = "AREA_RETRY_MAX", default_value_t = 20)]
    pub retry_max: u32,

    /// Longest an attempt may run, in milliseconds.
    #[arg(long, env = "AREA_REACTION_TIMEOUT_MS", default_value_t = 30_000)]
    pub reaction_timeout_ms: u64,

    /// How long a running attempt's lease lasts before another worker may take
    /// the execution over, in milliseconds.
    #[arg(long, env = "AREA_LEASE_MS", default_value_t = 60_000)]
    pub lease_ms: u64,

    /// How long an entry may stay pending on a consumer before another claims it,
    /// in milliseconds.
    #[arg(long, env = "AREA_CLAIM_IDLE_MS", default_value_t = 60_000)]
    pub claim_idle_ms: u64,

    /// What to do with an attempt whose worker died mid-attempt, for reactions
    /// that cannot drop a repeated delivery (email, Slack): `retry` (may deliver
    /// twice) or `fail` (record `failed` with code `in_doubt` for a person to
    /// check). Webhooks always retry: receivers drop repeats by `webhook-id`.
    #[arg(long, env = "AREA_IN_DOUBT_POLICY", value_enum, default_value_t = InDoubtPolicy::Retry)]
    pub in_doubt_policy: InDoubtPolicy,

    /// Deliveries after which an entry is dead-lettered as poison.
    #[arg(long, env = "AREA_MAX_DELIVERIES", default_value_t = 10)]
    pub max_deliveries: u64,

    /// How long in-flight reactions may run after SIGTERM, in milliseconds.
    #[arg(long, env = "AREA_DRAIN_TIMEOUT_MS", default_value_t = 20_000)]
    pub drain_timeout_ms: u64,

    /// Largest accepted event, in bytes; larger ones are dead-lettered.
    #[arg(long, env = "AREA_MAX_EVENT_BYTES", default_value_t = 1024 * 1024)]
    pub max_event_bytes: usize,

    /// PostgreSQL connections in this process's pool.
    #[arg(long, env = "AREA_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: usize,

    /// How often due retries are moved from the schedule to the job streams, in
    /// milliseconds.
    #[arg(long, env = "AREA_SCHEDULER_TICK_MS", default_value_t = 50)]
    pub scheduler_tick_ms: u64,
}

impl Config {
    /// The defaults, as if no flag or variable were given.
    pub fn defaults() -> Self {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: Config,
        }
        <Wrapper as clap::Parser>::parse_from(["area-worker"]).config
    }

    /// The default retry policy for reactions that set none.
    pub fn retry_policy(&self) -> Result<RetryPolicy, area_core::RetryPolicyError> {
        let lookup = |name: &str| match name {
            RetryPolicy::ENV_BASE_MS => Some(self.retry_base_ms.to_string()),
            RetryPolicy::ENV_CAP_MS => Some(self.retry_cap_ms.to_string()),
            RetryPolicy::ENV_MAX => Some(self.retry_max.to_string()),
            _ => None,
        };
        RetryPolicy::from_lookup(lookup)
    }

    /// The API token, from `AREA_API_TOKEN` or the first line of
    /// `AREA_API_TOKEN_FILE`; `None` when neither is set.
    pub fn resolve_api_token(&self) -> Result<Option<SecretString>, String> {
        if let Some(token) = &self.api_token {
            return Ok(Some(token.clone()));
        }
        let Some(path) = &self.api_token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|error| {
            format!(
                "cannot read AREA_API_TOKEN_FILE {}: {error}",
                path.display()
            )
        })?;
        let token = text.lines().next().unwrap_or_default().trim();
        if token.is_empty() {
            return Err(format!("AREA_API_TOKEN_FILE {} is empty", path.display()));
        }
        Ok(Some(SecretString::from(token)))
    }

    /// The consumer name, defaulting to `<hostname>-<pid>`.
    pub fn consumer_name(&self) -> String {
        self.consumer.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|name| name.trim().to_owned())
                .unwrap_or_else(|_| "worker".into());
            format!("{host}-{}", std::process::id())
        })
    }

    /// Checks combinations that cannot work and returns warnings for risky ones.
    pub fn check(&self) -> Result<Vec<String>, String> {
        if self.concurrency == 0 {
            return Err("AREA_CONCURRENCY must be at least 1".into());
        }
        if self.batch_size == 0 {
            return Err("AREA_BATCH_SIZE must be at least 1".into());
        }
        if self.block_ms == 0 {
            return Err("AREA_BLOCK_MS must be at least 1".into());
        }
        self.retry_policy().map_err(|error| error.to_string())?;

        let mut warnings = Vec::new();
        if self.reaction_timeout_ms > self.lease_ms {
            warnings.push(format!(
                "AREA_REACTION_TIMEOUT_MS ({}) is longer than AREA_LEASE_MS ({}): a slow attempt \
                 may be taken over and run twice",
                self.reaction_timeout_ms, self.lease_ms
            ));
        }
        if self.claim_idle_ms < self.reaction_timeout_ms {
            warnings.push(format!(
                "AREA_CLAIM_IDLE_MS ({}) is shorter than AREA_REACTION_TIMEOUT_MS ({}): entries of \
                 slow attempts will be claimed by other workers (the lease still keeps them from \
                 running twice)",
                self.claim_idle_ms, self.reaction_timeout_ms
            ));
        }
        Ok(warnings)
    }
}

fn parse_secret(text: &str) -> Result<SecretString, String> {
    if text.trim().is_empty() {
        return Err("the API token is empty".into());
    }
    Ok(SecretString::from(text.trim()))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn api_token_comes_from_the_variable_or_the_first_line_of_the_file() {
        let mut config = Config::defaults();
        assert!(config.resolve_api_token().unwrap().is_none());

        config.api_token = Some(SecretString::from("from-variable"));
        let token = config.resolve_api_token().unwrap().unwrap();
        assert_eq!(token.expose_secret(), "from-variable");

        let path = std::env::temp_dir().join(format!("area-token-{}", std::process::id()));
        std::fs::write(&path, "from-file  \nsecond line\n").unwrap();
        config.api_token = None;
        config.api_token_file = Some(path.clone());
        let token = config.resolve_api_token().unwrap().unwrap();
        assert_eq!(token.expose_secret(), "from-file");

        std::fs::write(&path, "\n").unwrap();
        assert!(config.resolve_api_token().unwrap_err().contains("is empty"));
        std::fs::remove_file(&path).unwrap();
        assert!(config.resolve_api_token().unwrap_err().contains("cannot read"));
    }

    #[test]
    fn the_api_token_never_shows_in_debug_output() {
        let mut config = Config::defaults();
        config.api_token = Some(SecretString::from("do-not-print-me"));
        let debug = format!("{config:?}");
        assert!(!debug.contains("do-not-print-me"), "{debug}");
    }
}
