//! The worker's configuration, one type loaded in layers with figment:
//!
//! 1. built-in defaults, which run against a local Redis and PostgreSQL;
//! 2. an optional TOML file (`--config`; `area-worker.example.toml` documents
//!    every key);
//! 3. environment variables: `REDIS_URL`, `DATABASE_URL`, and `AREA_<KEY>` for
//!    every other key (`AREA_CONCURRENCY` sets `concurrency`);
//! 4. command-line flags (`--concurrency 64`).
//!
//! A later layer wins. Keys that belong to a reaction compiled into the binary
//! (`smtp_*` for email, `slack_*`, `webhook_*`, `<service>_*` for added
//! crates) are handed to that reaction, which validates them; any other
//! unknown key, and any invalid value, stops the start-up with the key and the
//! layer that set it named.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use area_core::RetryPolicy;
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Metadata, Profile, Provider};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What to do with an attempt whose outcome is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InDoubtPolicy {
    /// Run it again with the same idempotency key.
    Retry,
    /// Record the execution as failed for a person to look at.
    Fail,
}

/// Declares the plain options once: the [`Config`] field, its default, and the
/// matching optional command-line flag of [`Overrides`].
macro_rules! options {
    ($( $(#[doc = $doc:literal])* $name:ident : $ty:ty = $default:expr; )*) => {
        /// The worker's configuration. See the module documentation for how it
        /// is loaded.
        #[derive(Clone, Deserialize)]
        #[serde(default)]
        pub struct Config {
            $( $(#[doc = $doc])* pub $name: $ty, )*
            /// This worker's consumer name; must be unique among live workers.
            /// Defaults to `<hostname>-<pid>`.
            pub consumer: Option<String>,
            /// Bearer token that mutating API routes require (`AREA_API_TOKEN`).
            /// Without one they are open on a loopback address and refused on
            /// any other.
            pub api_token: Option<SecretString>,
            /// A file whose first line is the API token (`AREA_API_TOKEN_FILE`).
            pub api_token_file: Option<PathBuf>,
            /// Settings of the reactions compiled in, by key (`smtp_host`, ...),
            /// and any other key, which loading rejects.
            #[serde(flatten)]
            pub reactions: BTreeMap<String, Value>,
            /// Keys of workspace reactions this binary was built without: a
            /// fleet of single-reaction binaries may share one environment, so
            /// they are dropped with a warning rather than refused.
            #[serde(skip)]
            pub ignored_settings: Vec<String>,
        }

        impl Default for Config {
            fn default() -> Self {
                Self {
                    $( $name: $default, )*
                    consumer: None,
                    api_token: None,
                    api_token_file: None,
                    reactions: BTreeMap::new(),
                    ignored_settings: Vec::new(),
                }
            }
        }

        /// Command-line flags of `area-worker run`; each overrides the file and
        /// the environment. Secrets have no flag: other users can read a
        /// process's arguments.
        #[derive(Clone, Debug, Default, clap::Args, Serialize)]
        pub struct Overrides {
            $(
                $(#[doc = $doc])*
                #[arg(long)]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )*
            /// This worker's consumer name; must be unique among live workers.
            #[arg(long)]
            #[serde(skip_serializing_if = "Option::is_none")]
            pub consumer: Option<String>,
        }

        impl Config {
            /// The effective configuration as TOML, secrets redacted.
            pub fn to_redacted_toml(&self) -> String {
                let mut table = toml::Table::new();
                $( insert(&mut table, stringify!($name), &self.$name); )*
                insert(&mut table, "consumer", &self.consumer_name());
                let token = self.api_token.as_ref().map(|_| REDACTED);
                insert(&mut table, "api_token", &token);
                insert(&mut table, "api_token_file", &self.api_token_file);
                for (key, value) in &self.reactions {
                    if is_secret_key(key) {
                        insert(&mut table, key, &REDACTED);
                    } else {
                        insert(&mut table, key, value);
                    }
                }
                for key in ["redis_url", "database_url"] {
                    if let Some(toml::Value::String(url)) = table.get_mut(key) {
                        *url = redact_url_password(url);
                    }
                }
                let mut text = toml::to_string(&table).unwrap_or_default();
                // Printed by `area-worker config`: a warning written to
                // stderr right after must start a line of its own.
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text
            }
        }
    };
}

options! {
    /// Redis, including the database number (`REDIS_URL`).
    redis_url: String = "redis://127.0.0.1:6379".into();
    /// PostgreSQL (`DATABASE_URL`).
    database_url: String = "postgres://postgres@127.0.0.1:5432/area".into();
    /// Prefix of every Redis key: `<prefix>events`, `<prefix>jobs:<service>`, ...
    stream_prefix: String = "area:".into();
    /// The consumer group every worker joins.
    group: String = "area-workers".into();
    /// Where the REST API listens.
    api_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080));
    /// Reactions in flight per service in this process. Also bounds the
    /// connections open to one service (an SMTP relay that caps them wants
    /// less).
    concurrency: usize = 512;
    /// Whether the fan-out runs a new execution itself when this process
    /// serves its service and has room for it, rather than passing it through
    /// the job stream: one Redis round trip and one read fewer per execution.
    /// The event's entry then stays pending until the result is recorded.
    direct_run: bool = true;
    /// Entries read, inserted, claimed or recorded per batch. Half the
    /// concurrency by default: the fan-out keeps two batches in flight, and
    /// each new row runs directly only with a free slot of its service.
    batch_size: usize = 256;
    /// How long a blocking stream read waits, in milliseconds.
    block_ms: u64 = 1000;
    /// Delay before the first retry, in milliseconds; doubled for each later one.
    retry_base_ms: u64 = 2000;
    /// Longest wait between two attempts, in milliseconds.
    retry_cap_ms: u64 = 3_600_000;
    /// Retries after the first attempt.
    retry_max: u32 = 20;
    /// Longest an attempt may run, in milliseconds.
    reaction_timeout_ms: u64 = 30_000;
    /// How long a running attempt's lease lasts before another worker may take
    /// the execution over, in milliseconds.
    lease_ms: u64 = 60_000;
    /// How long an entry may stay pending on a consumer before another claims
    /// it, in milliseconds.
    claim_idle_ms: u64 = 60_000;
    /// What to do with an attempt whose worker died mid-attempt, for reactions
    /// that cannot drop a repeated delivery (email, Slack): `retry` (may deliver
    /// twice) or `fail` (record `failed` with code `in_doubt` for a person to
    /// check). Webhooks always retry: receivers drop repeats by `webhook-id`.
    in_doubt_policy: InDoubtPolicy = InDoubtPolicy::Retry;
    /// Deliveries after which an entry is dead-lettered as poison.
    max_deliveries: u64 = 10;
    /// How long in-flight reactions may run after SIGTERM, in milliseconds.
    drain_timeout_ms: u64 = 20_000;
    /// Largest accepted event, in bytes; larger ones are dead-lettered.
    max_event_bytes: usize = 1024 * 1024;
    /// PostgreSQL connections in this process's pool.
    db_pool_size: usize = 16;
    /// How often due retries are moved from the schedule to the job streams, in
    /// milliseconds.
    scheduler_tick_ms: u64 = 50;
}

const REDACTED: &str = "[redacted]";

/// `url` with the password of its user-info, if any, replaced by
/// `[redacted]`: `postgres://app:pw@db/area` → `postgres://app:[redacted]@db/area`.
fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|at| at + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |at| scheme_end + at);
    let Some(at) = url[scheme_end..authority_end]
        .rfind('@')
        .map(|at| scheme_end + at)
    else {
        return url.to_owned();
    };
    match url[scheme_end..at]
        .find(':')
        .map(|colon| scheme_end + colon)
    {
        Some(colon) => format!("{}:{REDACTED}{}", &url[..colon], &url[at..]),
        None => url.to_owned(),
    }
}

/// Debug shows the redacted configuration: reaction settings may hold secrets.
impl std::fmt::Debug for Config {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.to_redacted_toml())
    }
}

/// `AREA_` variables that other subcommands read; `run` ignores them.
const FOREIGN_VARIABLES: [&str; 3] = ["log_format", "api_url", "config"];

/// The environment layer: `REDIS_URL`, `DATABASE_URL` and every `AREA_<KEY>`
/// as `<key>`, each value kept as the exact string it was given. (figment's
/// own `Env` reads values as TOML-like literals, which turned a password
/// `0123` into the number 123 and refused a stream prefix `1`.)
struct Environment;

impl Provider for Environment {
    fn metadata(&self) -> Metadata {
        // Errors name the variable an operator would set.
        Metadata::named("environment variable(s)").interpolater(|_, path| {
            let key = path.join("_").to_ascii_uppercase();
            match key.as_str() {
                "REDIS_URL" | "DATABASE_URL" => key,
                _ => format!("AREA_{key}"),
            }
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (name, value) in std::env::vars_os() {
            let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
                continue;
            };
            let key = match name {
                "REDIS_URL" | "DATABASE_URL" => name.to_ascii_lowercase(),
                _ => match name.strip_prefix("AREA_") {
                    Some(rest) if !rest.is_empty() => rest.to_ascii_lowercase(),
                    _ => continue,
                },
            };
            if FOREIGN_VARIABLES.contains(&key.as_str()) {
                continue;
            }
            dict.insert(key, figment::value::Value::from(value.to_owned()));
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer has an invalid value, or the file cannot be read.
    #[error("invalid configuration: {0}")]
    /// Not a `#[source]`: the message already carries figment's, and an
    /// error chain would print it twice.
    Invalid(Box<figment::Error>),
    /// A key no option and no compiled reaction knows.
    #[error(
        "unknown configuration key `{key}` (set by {source_name}; as a variable: AREA_{upper})"
    )]
    UnknownKey {
        /// The key.
        key: String,
        /// The layer that set it.
        source_name: String,
        /// The key as an environment variable suffix.
        upper: String,
    },
    /// The `--config` file does not exist.
    #[error("the configuration file {0} does not exist")]
    MissingFile(PathBuf),
}

impl From<Box<figment::Error>> for ConfigError {
    fn from(error: Box<figment::Error>) -> Self {
        Self::Invalid(error)
    }
}

impl Config {
    /// The defaults, as if nothing were configured.
    pub fn defaults() -> Self {
        Self::default()
    }

    /// Loads the layers: defaults, `file`, the process environment, `flags`.
    /// `reaction_prefixes` are the key prefixes owned by the compiled reactions,
    /// `absent_prefixes` those of the workspace's other reactions, whose keys
    /// are set aside in [`Config::ignored_settings`].
    pub fn load(
        file: Option<&Path>,
        flags: &Overrides,
        reaction_prefixes: &[&str],
        absent_prefixes: &[&str],
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let figment = figment
            .merge(Environment)
            .merge(Serialized::defaults(flags));
        // Lossy: a string from the environment becomes a number or a boolean
        // where the option is one, and stays a string everywhere else.
        let mut config: Self = figment.extract_lossy().map_err(Box::new)?;

        let under = |prefixes: &[&str], key: &str| {
            prefixes.iter().any(|prefix| {
                key.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('_'))
            })
        };
        let (ignored, kept): (BTreeMap<_, _>, BTreeMap<_, _>) =
            std::mem::take(&mut config.reactions)
                .into_iter()
                .partition(|(key, _)| {
                    !under(reaction_prefixes, key) && under(absent_prefixes, key)
                });
        config.reactions = kept;
        config.ignored_settings = ignored.into_keys().collect();
        for key in config.reactions.keys() {
            if !under(reaction_prefixes, key) {
                let source_name = figment.find_metadata(key).map_or_else(
                    || "an unknown layer".to_owned(),
                    |metadata| metadata.name.to_string(),
                );
                return Err(ConfigError::UnknownKey {
                    key: key.clone(),
                    source_name,
                    upper: key.to_uppercase(),
                });
            }
        }
        Ok(config)
    }

    /// Looks a reaction setting up by its environment variable name
    /// (`AREA_SMTP_HOST` reads key `smtp_host`), for the reaction crates'
    /// `from_lookup` constructors.
    pub fn reaction_setting(&self, variable: &str) -> Option<String> {
        let key = variable.strip_prefix("AREA_")?.to_lowercase();
        match self.reactions.get(&key)? {
            Value::Null => None,
            Value::String(text) => Some(text.clone()),
            other => Some(other.to_string()),
        }
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

    /// The API token, from `api_token` or the first line of `api_token_file`;
    /// `None` when neither is set.
    pub fn resolve_api_token(&self) -> Result<Option<SecretString>, String> {
        if self.api_token.is_some() && self.api_token_file.is_some() {
            return Err("set AREA_API_TOKEN or AREA_API_TOKEN_FILE, not both".into());
        }
        if let Some(token) = &self.api_token {
            use secrecy::ExposeSecret;
            if token.expose_secret().trim().is_empty() {
                return Err("AREA_API_TOKEN is empty".into());
            }
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
            return Err("concurrency (AREA_CONCURRENCY) must be at least 1".into());
        }
        if self.batch_size == 0 {
            return Err("batch_size (AREA_BATCH_SIZE) must be at least 1".into());
        }
        if self.block_ms == 0 {
            return Err("block_ms (AREA_BLOCK_MS) must be at least 1".into());
        }
        if self.max_deliveries == 0 {
            return Err(
                "max_deliveries (AREA_MAX_DELIVERIES) must be at least 1: with 0 every entry \
                 would be dead-lettered as poison"
                    .into(),
            );
        }
        if self.max_event_bytes == 0 {
            return Err(
                "max_event_bytes (AREA_MAX_EVENT_BYTES) must be at least 1: with 0 every event \
                 would be dead-lettered as too large"
                    .into(),
            );
        }
        if self.db_pool_size == 0 {
            return Err("db_pool_size (AREA_DB_POOL_SIZE) must be at least 1".into());
        }
        if !["redis://", "rediss://", "redis+unix://", "unix://"]
            .iter()
            .any(|scheme| self.redis_url.starts_with(scheme))
        {
            return Err(
                "redis_url (REDIS_URL) must start with redis://, rediss://, redis+unix:// or unix://"
                    .into(),
            );
        }
        if !["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| self.database_url.starts_with(scheme))
        {
            return Err(
                "database_url (DATABASE_URL) must start with postgres:// or postgresql://".into(),
            );
        }
        self.retry_policy().map_err(|error| error.to_string())?;

        let mut warnings: Vec<String> = self
            .ignored_settings
            .iter()
            .map(|key| {
                format!(
                    "{key} (AREA_{}) belongs to a reaction this binary was built without; ignored",
                    key.to_uppercase()
                )
            })
            .collect();
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

fn insert<T: Serialize + ?Sized>(table: &mut toml::Table, key: &str, value: &T) {
    if let Ok(value) = toml::Value::try_from(value) {
        table.insert(key.to_owned(), value);
    }
}

fn is_secret_key(key: &str) -> bool {
    ["password", "token", "secret"]
        .iter()
        .any(|word| key.contains(word))
}

#[cfg(test)]
// figment's Jail closures return its own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    const PREFIXES: [&str; 3] = ["webhook", "smtp", "slack"];

    fn load_in(
        jail: &mut figment::Jail,
        toml: Option<&str>,
        flags: &Overrides,
    ) -> Result<Config, ConfigError> {
        let path = toml.map(|text| {
            jail.create_file("area.toml", text)
                .expect("the jail can hold a file");
            PathBuf::from("area.toml")
        });
        Config::load(path.as_deref(), flags, &PREFIXES, &["pager"])
    }

    #[test]
    fn flags_beat_environment_beats_file_beats_defaults() {
        figment::Jail::expect_with(|jail| {
            let config = load_in(jail, None, &Overrides::default()).unwrap();
            assert_eq!(config.concurrency, 512, "the default");

            let file = "concurrency = 10\nbatch_size = 20\nblock_ms = 30\n";
            let config = load_in(jail, Some(file), &Overrides::default()).unwrap();
            assert_eq!(
                (config.concurrency, config.batch_size, config.block_ms),
                (10, 20, 30)
            );

            jail.set_env("AREA_BATCH_SIZE", "21");
            jail.set_env("AREA_BLOCK_MS", "31");
            jail.set_env("REDIS_URL", "redis://127.0.0.1:6390/2");
            let flags = Overrides {
                block_ms: Some(32),
                ..Overrides::default()
            };
            let config = load_in(jail, Some(file), &flags).unwrap();
            assert_eq!(
                (config.concurrency, config.batch_size, config.block_ms),
                (10, 21, 32)
            );
            assert_eq!(config.redis_url, "redis://127.0.0.1:6390/2");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_invalid_values_are_named() {
        figment::Jail::expect_with(|jail| {
            let error = load_in(jail, Some("concurency = 3\n"), &Overrides::default()).unwrap_err();
            assert!(error.to_string().contains("`concurency`"), "{error}");

            let error = load_in(
                jail,
                Some("concurrency = \"many\"\n"),
                &Overrides::default(),
            )
            .unwrap_err();
            assert!(error.to_string().contains("concurrency"), "{error}");

            jail.set_env("AREA_LEASE_MSS", "5");
            let error = load_in(jail, None, &Overrides::default()).unwrap_err();
            assert!(error.to_string().contains("AREA_LEASE_MSS"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn environment_values_keep_their_exact_text() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AREA_STREAM_PREFIX", "1");
            jail.set_env("AREA_GROUP", "007");
            jail.set_env("AREA_API_TOKEN", "123456789");
            jail.set_env("AREA_SMTP_PASSWORD", "0123");
            jail.set_env("AREA_SLACK_API_URL", "[x]");
            jail.set_env("AREA_CONCURRENCY", "64");
            jail.set_env("AREA_IN_DOUBT_POLICY", "fail");
            let config = load_in(jail, None, &Overrides::default()).unwrap();
            assert_eq!(config.stream_prefix, "1");
            assert_eq!(config.group, "007");
            let token = config.resolve_api_token().unwrap().unwrap();
            assert_eq!(secrecy::ExposeSecret::expose_secret(&token), "123456789");
            assert_eq!(
                config.reaction_setting("AREA_SMTP_PASSWORD").as_deref(),
                Some("0123")
            );
            assert_eq!(
                config.reaction_setting("AREA_SLACK_API_URL").as_deref(),
                Some("[x]")
            );
            assert_eq!(config.concurrency, 64);
            assert_eq!(config.in_doubt_policy, InDoubtPolicy::Fail);

            jail.set_env("AREA_CONCURRENCY", "lots");
            let error = load_in(jail, None, &Overrides::default()).unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains("AREA_CONCURRENCY") && message.contains("lots"),
                "{message}"
            );
            Ok(())
        });
    }

    #[test]
    fn passwords_in_service_urls_are_redacted() {
        assert_eq!(
            redact_url_password("postgres://app:s3cret@db:5432/area?sslmode=require"),
            "postgres://app:[redacted]@db:5432/area?sslmode=require"
        );
        assert_eq!(
            redact_url_password("redis://:hunter2@cache:6379/0"),
            "redis://:[redacted]@cache:6379/0"
        );
        assert_eq!(
            redact_url_password("redis://cache:6379/0"),
            "redis://cache:6379/0"
        );
        assert_eq!(
            redact_url_password("postgres://app@db/area"),
            "postgres://app@db/area"
        );
        let mut config = Config::defaults();
        config.database_url = "postgres://app:s3cret@db/area".into();
        config.redis_url = "redis://:hunter2@cache".into();
        let printed = config.to_redacted_toml();
        assert!(
            !printed.contains("s3cret") && !printed.contains("hunter2"),
            "{printed}"
        );
        assert!(printed.ends_with('\n'), "ends its last line: {printed:?}");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn settings_of_reactions_built_out_are_ignored_with_a_warning() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AREA_PAGER_TOKEN", "not-for-this-binary");
            jail.set_env("AREA_SMTP_HOST", "127.0.0.1");
            let config = load_in(jail, None, &Overrides::default()).unwrap();
            assert_eq!(config.ignored_settings, ["pager_token"]);
            assert_eq!(config.reaction_setting("AREA_PAGER_TOKEN"), None);
            assert_eq!(
                config.reaction_setting("AREA_SMTP_HOST").as_deref(),
                Some("127.0.0.1")
            );
            let warnings = config.check().unwrap();
            assert!(
                warnings
                    .iter()
                    .any(|warning| warning.contains("AREA_PAGER_TOKEN")),
                "{warnings:?}"
            );
            assert!(!config.to_redacted_toml().contains("not-for-this-binary"));

            // A near miss of a known prefix is still a typo.
            jail.set_env("AREA_PAGERTOKEN", "x");
            let error = load_in(jail, None, &Overrides::default()).unwrap_err();
            assert!(error.to_string().contains("AREA_PAGERTOKEN"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn reaction_settings_pass_through_and_secrets_are_redacted() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AREA_SMTP_HOST", "127.0.0.1");
            jail.set_env("AREA_SMTP_PORT", "2525");
            jail.set_env("AREA_SMTP_PASSWORD", "hunter2-very-secret");
            jail.set_env("AREA_API_TOKEN", "token-very-secret");
            let config = load_in(jail, None, &Overrides::default()).unwrap();
            assert_eq!(
                config.reaction_setting("AREA_SMTP_HOST").as_deref(),
                Some("127.0.0.1")
            );
            assert_eq!(
                config.reaction_setting("AREA_SMTP_PORT").as_deref(),
                Some("2525")
            );
            assert_eq!(config.reaction_setting("AREA_SLACK_TOKEN"), None);

            let printed = config.to_redacted_toml();
            assert!(printed.contains("smtp_host = \"127.0.0.1\""), "{printed}");
            assert!(
                !printed.contains("hunter2") && !printed.contains("token-very-secret"),
                "{printed}"
            );
            assert!(printed.contains("api_token = \"[redacted]\""), "{printed}");
            let debug = format!("{config:?}");
            assert!(
                !debug.contains("token-very-secret") && !debug.contains("hunter2"),
                "{debug}"
            );
            Ok(())
        });
    }

    #[test]
    fn values_that_would_dead_letter_everything_or_never_connect_are_refused() {
        type Spoil = fn(&mut Config);
        let cases: [(&str, Spoil); 5] = [
            ("AREA_MAX_DELIVERIES", |config| config.max_deliveries = 0),
            ("AREA_MAX_EVENT_BYTES", |config| config.max_event_bytes = 0),
            ("AREA_DB_POOL_SIZE", |config| config.db_pool_size = 0),
            ("REDIS_URL", |config| {
                config.redis_url = "http://cache:6379".into()
            }),
            ("DATABASE_URL", |config| {
                config.database_url = "mysql://db/area".into()
            }),
        ];
        for (variable, spoil) in cases {
            let mut config = Config::defaults();
            assert!(config.check().is_ok());
            spoil(&mut config);
            let error = config.check().expect_err(variable);
            assert!(error.contains(variable), "{variable}: {error}");
        }
        let mut config = Config::defaults();
        config.redis_url = "rediss://cache:6380".into();
        config.database_url = "postgresql://db/area".into();
        assert!(config.check().is_ok());
    }

    #[test]
    fn the_example_file_sets_every_option_and_loads() {
        let example = include_str!("../../../area-worker.example.toml");
        let table: toml::Table = example.parse().expect("the example parses");
        let printed: toml::Table = Config::default().to_redacted_toml().parse().unwrap();
        for key in printed.keys().filter(|key| *key != "api_token") {
            assert!(
                table.contains_key(key) || example.contains(&format!("# {key} =")),
                "the example file does not document `{key}`"
            );
        }
        figment::Jail::expect_with(|jail| {
            let config = load_in(jail, Some(example), &Overrides::default()).unwrap();
            assert!(config.check().is_ok());
            Ok(())
        });
    }

    #[test]
    fn api_token_comes_from_the_variable_or_the_first_line_of_the_file() {
        let mut config = Config::defaults();
        assert!(config.resolve_api_token().unwrap().is_none());

        config.api_token = Some(SecretString::from("from-variable"));
        let token = config.resolve_api_token().unwrap().unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&token),
            "from-variable"
        );

        let path = std::env::temp_dir().join(format!("area-token-{}", std::process::id()));
        std::fs::write(&path, "from-file  \nsecond line\n").unwrap();
        config.api_token = None;
        config.api_token_file = Some(path.clone());
        let token = config.resolve_api_token().unwrap().unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&token), "from-file");

        std::fs::write(&path, "\n").unwrap();
        assert!(config.resolve_api_token().unwrap_err().contains("is empty"));
        std::fs::remove_file(&path).unwrap();
        assert!(
            config
                .resolve_api_token()
                .unwrap_err()
                .contains("cannot read")
        );
    }

    #[test]
    fn the_api_token_never_shows_in_debug_output() {
        let mut config = Config::defaults();
        config.api_token = Some(SecretString::from("do-not-print-me"));
        let debug = format!("{config:?}");
        assert!(!debug.contains("do-not-print-me"), "{debug}");
    }
}
