//! The retry policy: data plus a pure function from (attempt, error class) to
//! "retry after this delay" or "give up".
//!
//! The n-th retry waits `base * 2^(n-1)` (2 s, 4 s, 8 s, ... with the default
//! base), spread by ±`jitter` so that a fleet that failed together does not retry
//! together, and never longer than `cap`. A Retry-After hint from the service can
//! only move the next attempt later, and is clamped to the cap too. Randomness is
//! an argument, so the schedule is tested without I/O or luck.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::reaction::{ConfigError, ErrorClass};

/// How often and how far apart failed attempts are retried.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Delay before the first retry; doubled for each later one.
    #[serde(with = "millis", rename = "base_ms")]
    pub base: Duration,
    /// No two attempts are further apart than this.
    #[serde(with = "millis", rename = "cap_ms")]
    pub cap: Duration,
    /// Retries after the first attempt; attempt `max_retries + 1` is the last.
    pub max_retries: u32,
    /// Relative spread of each delay, 0.1 for ±10%.
    pub jitter: f64,
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RetryDecision {
    /// Run the next attempt after this delay.
    RetryAfter(Duration),
    /// Record the execution as failed.
    GiveUp,
}

/// A retry setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid retry setting `{name}`: {reason}")]
pub struct RetryPolicyError {
    /// The environment variable or config key.
    pub name: String,
    /// What is wrong with its value.
    pub reason: String,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(3600),
            max_retries: 20,
            jitter: 0.1,
        }
    }
}

impl RetryPolicy {
    /// Environment variables read by [`RetryPolicy::from_lookup`].
    pub const ENV_BASE_MS: &'static str = "AREA_RETRY_BASE_MS";
    /// See [`RetryPolicy::ENV_BASE_MS`].
    pub const ENV_CAP_MS: &'static str = "AREA_RETRY_CAP_MS";
    /// See [`RetryPolicy::ENV_BASE_MS`].
    pub const ENV_MAX: &'static str = "AREA_RETRY_MAX";

    /// Decides what follows the failure of attempt number `attempt` (1-based).
    /// `jitter_sample` is a uniform random number in `[-1, 1]`.
    pub fn decide(&self, attempt: u32, class: &ErrorClass, jitter_sample: f64) -> RetryDecision {
        if matches!(class, ErrorClass::Permanent) || attempt > self.max_retries {
            return RetryDecision::GiveUp;
        }

        let scheduled = self.scheduled_delay(attempt).as_secs_f64();
        let spread = self.jitter * jitter_sample.clamp(-1.0, 1.0);
        let mut delay = Duration::from_secs_f64((scheduled * (1.0 + spread)).max(0.0));
        if let ErrorClass::RateLimited {
            retry_after: Some(hint),
        } = class
        {
            delay = delay.max(*hint);
        }
        RetryDecision::RetryAfter(delay.min(self.cap))
    }

    /// The delay before retry number `retry` (1-based), before jitter, capped.
    pub fn scheduled_delay(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(62);
        let factor = 1u64 << exponent;
        let millis = (self.base.as_millis() as u64).saturating_mul(factor);
        Duration::from_millis(millis).min(self.cap)
    }

    /// The policy from the defaults overridden by `AREA_RETRY_*` variables, looked up
    /// through `lookup` (pass `|name| std::env::var(name).ok()` for the process).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, RetryPolicyError> {
        let mut policy = Self::default();
        if let Some(value) = lookup(Self::ENV_BASE_MS) {
            policy.base = Duration::from_millis(parse_number(Self::ENV_BASE_MS, &value)?);
        }
        if let Some(value) = lookup(Self::ENV_CAP_MS) {
            policy.cap = Duration::from_millis(parse_number(Self::ENV_CAP_MS, &value)?);
        }
        if let Some(value) = lookup(Self::ENV_MAX) {
            let max = parse_number(Self::ENV_MAX, &value)?;
            policy.max_retries = u32::try_from(max).map_err(|_| RetryPolicyError {
                name: Self::ENV_MAX.into(),
                reason: "too large".into(),
            })?;
        }
        policy.check().map_err(|reason| RetryPolicyError {
            name: "retry".into(),
            reason,
        })?;
        Ok(policy)
    }

    /// This policy with a reaction's own `retry` object applied over it, e.g.
    /// `{"max_retries": 5, "cap_ms": 300000}`. Unknown keys are errors.
    pub fn with_overrides(&self, overrides: &Value) -> Result<Self, ConfigError> {
        let Value::Object(fields) = overrides else {
            return Err(ConfigError::new("retry", "must be an object"));
        };
        let mut policy = *self;
        for (key, value) in fields {
            let field = format!("retry.{key}");
            let number = value
                .as_u64()
                .ok_or_else(|| ConfigError::new(&field, "must be a non-negative integer"))?;
            match key.as_str() {
                "base_ms" => policy.base = Duration::from_millis(number),
                "cap_ms" => policy.cap = Duration::from_millis(number),
                "max_retries" => {
                    policy.max_retries =
                        u32::try_from(number).map_err(|_| ConfigError::new(&field, "too large"))?;
                }
                _ => return Err(ConfigError::new(&field, "unknown retry setting")),
            }
        }
        policy
            .check()
            .map_err(|reason| ConfigError::new("retry", reason))?;
        Ok(policy)
    }

    fn check(&self) -> Result<(), String> {
        if self.base.is_zero() {
            return Err("the base delay must be at least 1 ms".into());
        }
        if self.cap < self.base {
            return Err("the cap must not be shorter than the base delay".into());
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return Err("the jitter must be in [0, 1)".into());
        }
        Ok(())
    }
}

fn parse_number(name: &str, value: &str) -> Result<u64, RetryPolicyError> {
    value.trim().parse().map_err(|_| RetryPolicyError {
        name: name.into(),
        reason: format!("expected a non-negative integer, got {value:?}"),
    })
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(value: u64) -> Duration {
        Duration::from_secs(value)
    }

    fn delay(decision: RetryDecision) -> Duration {
        match decision {
            RetryDecision::RetryAfter(delay) => delay,
            RetryDecision::GiveUp => panic!("expected a retry"),
        }
    }

    #[test]
    fn default_schedule_doubles_from_two_seconds() {
        let policy = RetryPolicy::default();
        let delays: Vec<_> = (1..=6)
            .map(|attempt| delay(policy.decide(attempt, &ErrorClass::Retryable, 0.0)))
            .collect();
        assert_eq!(
            delays,
            [secs(2), secs(4), secs(8), secs(16), secs(32), secs(64)]
        );
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let policy = RetryPolicy::default();
        assert_eq!(
            delay(policy.decide(3, &ErrorClass::Retryable, 1.0)),
            Duration::from_millis(8800)
        );
        assert_eq!(
            delay(policy.decide(3, &ErrorClass::Retryable, -1.0)),
            Duration::from_millis(7200)
        );
        // Samples outside [-1, 1] are clamped rather than trusted.
        assert_eq!(
            delay(policy.decide(3, &ErrorClass::Retryable, 7.0)),
            Duration::from_millis(8800)
        );
    }

    #[test]
    fn never_waits_longer_than_the_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(
            delay(policy.decide(12, &ErrorClass::Retryable, 0.0)),
            secs(3600)
        );
        assert_eq!(
            delay(policy.decide(20, &ErrorClass::Retryable, 1.0)),
            secs(3600)
        );
        assert_eq!(policy.scheduled_delay(200), secs(3600));
    }

    #[test]
    fn gives_up_after_last_scheduled_attempt() {
        let policy = RetryPolicy::default();
        assert!(matches!(
            policy.decide(20, &ErrorClass::Retryable, 0.0),
            RetryDecision::RetryAfter(_)
        ));
        assert_eq!(
            policy.decide(21, &ErrorClass::Retryable, 0.0),
            RetryDecision::GiveUp
        );
        let total: Duration = (1..=20).map(|retry| policy.scheduled_delay(retry)).sum();
        assert!(
            total > secs(9 * 3600) && total < secs(11 * 3600),
            "about ten hours, got {total:?}"
        );
    }

    #[test]
    fn permanent_errors_give_up_at_once() {
        assert_eq!(
            RetryPolicy::default().decide(1, &ErrorClass::Permanent, 0.0),
            RetryDecision::GiveUp
        );
    }

    #[test]
    fn retry_after_moves_later_never_earlier_and_is_capped() {
        let policy = RetryPolicy::default();
        let later = ErrorClass::RateLimited {
            retry_after: Some(secs(30)),
        };
        assert_eq!(delay(policy.decide(1, &later, 0.0)), secs(30));
        let earlier = ErrorClass::RateLimited {
            retry_after: Some(secs(1)),
        };
        assert_eq!(delay(policy.decide(2, &earlier, 0.0)), secs(4));
        let huge = ErrorClass::RateLimited {
            retry_after: Some(secs(86_400)),
        };
        assert_eq!(delay(policy.decide(1, &huge, 0.0)), secs(3600));
        let unparsed = ErrorClass::RateLimited { retry_after: None };
        assert_eq!(delay(policy.decide(1, &unparsed, 0.0)), secs(2));
        assert_eq!(policy.decide(21, &later, 0.0), RetryDecision::GiveUp);
    }

    #[test]
    fn reads_defaults_from_the_environment_names() {
        let env = |name: &str| match name {
            "AREA_RETRY_BASE_MS" => Some("50".to_owned()),
            "AREA_RETRY_CAP_MS" => Some("1000".to_owned()),
            "AREA_RETRY_MAX" => Some("3".to_owned()),
            _ => None,
        };
        let policy = RetryPolicy::from_lookup(env).unwrap();
        assert_eq!(
            (policy.base, policy.cap, policy.max_retries),
            (Duration::from_millis(50), secs(1), 3)
        );
        let bad =
            RetryPolicy::from_lookup(|name| (name == "AREA_RETRY_MAX").then(|| "many".into()));
        assert_eq!(bad.unwrap_err().name, "AREA_RETRY_MAX");
        assert_eq!(
            RetryPolicy::from_lookup(|_| None).unwrap(),
            RetryPolicy::default()
        );
    }

    #[test]
    fn a_short_schedule_is_one_line_of_reaction_config() {
        let policy = RetryPolicy::default()
            .with_overrides(&serde_json::json!({"max_retries": 5, "cap_ms": 300_000}))
            .unwrap();
        assert_eq!(policy.max_retries, 5);
        assert_eq!(policy.scheduled_delay(10), secs(300));
        let unknown = RetryPolicy::default().with_overrides(&serde_json::json!({"tries": 5}));
        assert_eq!(unknown.unwrap_err().field, "retry.tries");
    }
}
