//! The webhook reaction's settings, read from the worker's environment: the
//! allow-list, the default timeout, the response cap and the connection pool.
//!
//! Every setting has a default, so a worker without any `AREA_WEBHOOK_*`
//! variable gets the safe behaviour: public destinations only, 10 s per
//! attempt, 64 KiB of response kept. Empty variables count as unset, so a
//! blank line in an env file falls back to the default.

use std::time::Duration;

use crate::allow::{AllowRule, describe_allow_list, parse_allow_list};
use crate::error::Error;

/// Variable holding the allow-list: comma-separated hosts, addresses or CIDR networks.
pub const ALLOW_VARIABLE: &str = "AREA_WEBHOOK_ALLOW";
/// Variable holding the default total timeout of one request, in milliseconds.
pub const TIMEOUT_VARIABLE: &str = "AREA_WEBHOOK_TIMEOUT_MS";
/// Variable holding how many bytes of a response body are read and kept.
pub const MAX_RESPONSE_BYTES_VARIABLE: &str = "AREA_WEBHOOK_MAX_RESPONSE_BYTES";
/// Variable holding how long an idle pooled connection is kept, in milliseconds.
pub const POOL_IDLE_TIMEOUT_VARIABLE: &str = "AREA_WEBHOOK_POOL_IDLE_TIMEOUT_MS";
/// Variable holding how many idle connections are kept per host.
pub const POOL_MAX_IDLE_PER_HOST_VARIABLE: &str = "AREA_WEBHOOK_POOL_MAX_IDLE_PER_HOST";

/// How long one request may take, connection and whole body read included,
/// when the reaction's config does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a response body is read and kept: 64 KiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How long an idle pooled connection is kept.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How many idle connections are kept per host: enough for a burst of
/// concurrent webhooks to one receiver to reuse its connections.
pub const DEFAULT_POOL_MAX_IDLE_PER_HOST: usize = 1024;

/// The largest accepted response cap (16 MiB): the excerpt is stored in the
/// execution row, and a bigger one is a configuration mistake.
const MAX_RESPONSE_BYTES_LIMIT: usize = 16 * 1024 * 1024;

/// How the webhook reaction reaches receivers. Holds no secret.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookSettings {
    /// Hosts and networks that webhooks may reach even though they are
    /// loopback, private or otherwise blocked. Empty by default.
    pub allow: Vec<AllowRule>,
    /// The total time of one request when the config has no `timeout_ms`:
    /// connecting, sending, and reading the response up to the cap.
    pub timeout: Duration,
    /// How many bytes of a response body are read and kept; the rest is
    /// never read.
    pub max_response_bytes: usize,
    /// How long an idle pooled connection is kept before it is closed.
    pub pool_idle_timeout: Duration,
    /// How many idle connections are kept per host.
    pub pool_max_idle_per_host: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            pool_max_idle_per_host: DEFAULT_POOL_MAX_IDLE_PER_HOST,
        }
    }
}

impl WebhookSettings {
    /// Reads the settings from the process environment; see [`Self::from_lookup`].
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, which returns a variable's value.
    ///
    /// Every variable is optional (see the `*_VARIABLE` constants); every
    /// error names the variable at fault.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let lookup = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let mut settings = Self::default();

        if let Some(allow) = lookup(ALLOW_VARIABLE) {
            settings.allow = parse_allow_list(&allow).map_err(|error| Error::InvalidSetting {
                variable: ALLOW_VARIABLE,
                reason: error.to_string(),
            })?;
        }
        if let Some(timeout) = lookup(TIMEOUT_VARIABLE) {
            settings.timeout = Duration::from_millis(parse_number(&timeout, TIMEOUT_VARIABLE, 1)?);
        }
        if let Some(max) = lookup(MAX_RESPONSE_BYTES_VARIABLE) {
            let max = parse_number(&max, MAX_RESPONSE_BYTES_VARIABLE, 0)?;
            settings.max_response_bytes = usize::try_from(max)
                .ok()
                .filter(|max| *max <= MAX_RESPONSE_BYTES_LIMIT)
                .ok_or_else(|| Error::InvalidSetting {
                    variable: MAX_RESPONSE_BYTES_VARIABLE,
                    reason: format!("must be at most {MAX_RESPONSE_BYTES_LIMIT} bytes"),
                })?;
        }
        if let Some(idle) = lookup(POOL_IDLE_TIMEOUT_VARIABLE) {
            settings.pool_idle_timeout =
                Duration::from_millis(parse_number(&idle, POOL_IDLE_TIMEOUT_VARIABLE, 0)?);
        }
        if let Some(max_idle) = lookup(POOL_MAX_IDLE_PER_HOST_VARIABLE) {
            let max_idle = parse_number(&max_idle, POOL_MAX_IDLE_PER_HOST_VARIABLE, 0)?;
            settings.pool_max_idle_per_host =
                usize::try_from(max_idle).map_err(|_| Error::InvalidSetting {
                    variable: POOL_MAX_IDLE_PER_HOST_VARIABLE,
                    reason: "too large".into(),
                })?;
        }
        Ok(settings)
    }

    /// A one-line description of the allow-list for the start-up log.
    pub fn describe_allow_list(&self) -> String {
        describe_allow_list(&self.allow)
    }
}

fn parse_number(text: &str, variable: &'static str, min: u64) -> Result<u64, Error> {
    let invalid = |reason: String| Error::InvalidSetting { variable, reason };
    let number: u64 = text
        .trim()
        .parse()
        .map_err(|_| invalid(format!("`{}` is not a whole number", text.trim())))?;
    if number < min {
        return Err(invalid(format!("must be at least {min}")));
    }
    Ok(number)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<WebhookSettings, Error> {
        let variables: HashMap<String, String> = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        WebhookSettings::from_lookup(|name| variables.get(name).cloned())
    }

    #[test]
    fn defaults_to_public_destinations_and_bounded_responses() {
        let settings = from(&[]).unwrap();
        assert_eq!(settings, WebhookSettings::default());
        assert!(settings.allow.is_empty());
        assert_eq!(settings.timeout, Duration::from_secs(10));
        assert_eq!(settings.max_response_bytes, 65_536);
        assert_eq!(settings.pool_max_idle_per_host, 1024);
        assert_eq!(settings.describe_allow_list(), "none");
    }

    #[test]
    fn reads_every_variable() {
        let settings = from(&[
            (ALLOW_VARIABLE, "127.0.0.1,::1,localhost,10.0.0.0/8"),
            (TIMEOUT_VARIABLE, "2500"),
            (MAX_RESPONSE_BYTES_VARIABLE, "1000"),
            (POOL_IDLE_TIMEOUT_VARIABLE, "30000"),
            (POOL_MAX_IDLE_PER_HOST_VARIABLE, "16"),
        ])
        .unwrap();
        assert_eq!(
            settings.describe_allow_list(),
            "127.0.0.1/32, ::1/128, localhost, 10.0.0.0/8"
        );
        assert_eq!(settings.timeout, Duration::from_millis(2500));
        assert_eq!(settings.max_response_bytes, 1000);
        assert_eq!(settings.pool_idle_timeout, Duration::from_secs(30));
        assert_eq!(settings.pool_max_idle_per_host, 16);
    }

    #[test]
    fn blank_variables_fall_back_to_defaults() {
        let settings = from(&[(ALLOW_VARIABLE, "  "), (TIMEOUT_VARIABLE, "")]).unwrap();
        assert_eq!(settings, WebhookSettings::default());
    }

    #[test]
    fn errors_name_the_variable() {
        let cases = [
            (ALLOW_VARIABLE, "localhost:8080"),
            (TIMEOUT_VARIABLE, "ten"),
            (TIMEOUT_VARIABLE, "0"),
            (MAX_RESPONSE_BYTES_VARIABLE, "-1"),
            (MAX_RESPONSE_BYTES_VARIABLE, "999999999999"),
            (POOL_IDLE_TIMEOUT_VARIABLE, "1.5"),
            (POOL_MAX_IDLE_PER_HOST_VARIABLE, "many"),
        ];
        for (variable, value) in cases {
            let error = from(&[(variable, value)]).unwrap_err();
            let named = match &error {
                Error::InvalidSetting { variable, .. } => *variable,
                other => panic!("{variable}={value} gave {other}"),
            };
            assert_eq!(named, variable, "{variable}={value} gave {error}");
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("invalid {variable}: "))
            );
        }
    }
}
