//! Names of the Redis keys, all under one prefix so that tests and tenants can
//! share a server without sharing keys.

/// The key names derived from a prefix (default `area:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamKeys {
    prefix: String,
}

impl Default for StreamKeys {
    fn default() -> Self {
        Self::new("area:")
    }
}

impl StreamKeys {
    /// Keys under `prefix`, e.g. `area:` gives `area:events`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix itself.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The stream producers append events to.
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// The dead-letter stream.
    pub fn dead_letters(&self) -> String {
        format!("{}events:dead", self.prefix)
    }

    /// The job stream of one service.
    pub fn jobs(&self, service: &str) -> String {
        format!("{}jobs:{service}", self.prefix)
    }

    /// The prefix of every job stream, for scripts that derive them.
    pub fn jobs_prefix(&self) -> String {
        format!("{}jobs:", self.prefix)
    }

    /// The sorted set of scheduled retries.
    pub fn retries(&self) -> String {
        format!("{}retries", self.prefix)
    }
}
