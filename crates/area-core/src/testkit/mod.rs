//! The conformance kit: checks that every reaction crate runs against its own
//! implementation, so the engine can rely on the same behaviour from all of them.
//!
//! Enabled by the `testkit` feature, for dev-dependencies only:
//!
//! ```toml
//! [dev-dependencies]
//! area-core = { workspace = true, features = ["testkit"] }
//! ```
//!
//! A crate's `tests/conformance.rs` starts its own loopback peers (an HTTP
//! receiver, an SMTP server, a fake service API), then describes the reaction
//! to a [`Conformance`] harness and runs it:
//!
//! - **configuration**: each invalid config is refused by `validate` with a
//!   [`ConfigError`](crate::ConfigError) naming the expected field, and by `execute` as a permanent
//!   `invalid_config` error whose message names the field;
//! - **templates**: a valid config holding templates renders with
//!   [`render_config`](crate::render_config) against [`sample_event`], passes `validate` and runs to
//!   an [`Outcome`] against the peer;
//! - **classification**: each declared failure ends with the declared
//!   [`ErrorClass`](crate::ErrorClass) and code, and the cases cover at least one retryable and one
//!   permanent failure;
//! - **timeout**: an attempt against a peer that never answers either returns
//!   an error by the context's timeout (plus a grace period) or, like the engine
//!   does, is cancelled then, and the cancelled attempt is dropped promptly;
//! - **secrets**: none of the given secret strings appears in any error (text,
//!   `Debug` or stored JSON) or output the harness saw.
//!
//! ```no_run
//! # async fn example(reaction: impl area_core::Reaction) {
//! use area_core::testkit::{Conformance, Failure, Hang};
//! use serde_json::json;
//!
//! let report = Conformance::new(reaction)
//!     .service("example")
//!     .invalid_config(json!({}), "target")
//!     .template(json!({"target": "t-{{ payload.repository }}"}))
//!     .failure(Failure::retryable("server busy", json!({"target": "busy"}), "busy"))
//!     .failure(Failure::permanent("unknown target", json!({"target": "gone"}), "not_found"))
//!     .hang(Hang::new(json!({"target": "silent"})))
//!     .secret("s3cret-token")
//!     .run()
//!     .await;
//! assert!(report.template_outcome.is_some());
//! # }
//! ```
//!
//! The harness collects every violation and [`Conformance::run`] panics with
//! all of them listed, so one run tells everything that is wrong.
//!
//! # Limitations
//!
//! - The kit cannot see the wire: that an invalid config fails before any I/O,
//!   or that a secret is not sent where it should not go, stays for the crate's
//!   own integration tests to check against its peer.
//! - Secrets are matched as plain substrings; one shorter than
//!   [`MIN_SECRET_CHARS`] characters is refused because it would match by chance.

mod cases;
mod checks;
mod sample;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::reaction::{Outcome, Reaction, ReactionError};

pub use cases::{Failure, Hang};
use checks::{Run, redact};

pub use sample::{
    DEFAULT_ATTEMPT_TIMEOUT, SAMPLE_DEDUP_KEY, SAMPLE_EVENT_ID, context, context_with_timeout,
    sample_event,
};

/// The shortest secret the harness accepts.
pub const MIN_SECRET_CHARS: usize = 6;

/// How long an invalid config may take to be refused by `execute`; it needs
/// no I/O, so anything longer means the reaction reached for its service.
const CONFIG_REFUSAL_LIMIT: Duration = Duration::from_secs(5);

/// How long dropping a cancelled attempt may take.
const DROP_LIMIT: Duration = Duration::from_secs(1);

/// The conformance harness for one reaction; see the module documentation.
pub struct Conformance {
    reaction: Arc<dyn Reaction>,
    service: Option<String>,
    invalid_configs: Vec<(Value, String)>,
    template: Option<Value>,
    failures: Vec<Failure>,
    hang: HangCase,
    /// Why the reaction has no failure case, when that was declared.
    failures_waived: Option<String>,
    secrets: Vec<String>,
}

/// Why a reaction has no hang case, when it has none.
enum HangCase {
    Missing,
    Given(Hang),
    Waived(String),
}

/// What a passing run saw, for the crate's own further assertions.
#[derive(Debug, Default)]
pub struct Report {
    /// The template case's config after rendering.
    pub rendered_config: Option<Value>,
    /// The outcome of the template case.
    pub template_outcome: Option<Outcome>,
    /// Each failure case's name and error, in order.
    pub failures: Vec<(String, ReactionError)>,
    /// How the hang case ended.
    pub hang: Option<HangResult>,
}

/// How an attempt against a silent peer ended.
#[derive(Debug)]
pub enum HangResult {
    /// The reaction gave up by itself within the timeout and grace.
    Returned {
        /// What it returned.
        error: ReactionError,
        /// How long the attempt took.
        elapsed: Duration,
    },
    /// The harness cancelled the attempt, as the engine would.
    Cancelled {
        /// How long dropping the cancelled attempt took.
        drop_time: Duration,
    },
}

/// Everything a run found wrong, one sentence each.
#[derive(Debug)]
pub struct Violations(pub Vec<String>);

impl fmt::Display for Violations {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            formatter,
            "the reaction does not conform ({} problem(s)):",
            self.0.len()
        )?;
        for violation in &self.0 {
            writeln!(formatter, "  - {violation}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

impl Conformance {
    /// A harness for `reaction`, with no case yet.
    pub fn new(reaction: impl Reaction) -> Self {
        Self::shared(Arc::new(reaction))
    }

    /// A harness for a reaction already behind an `Arc`.
    pub fn shared(reaction: Arc<dyn Reaction>) -> Self {
        Self {
            reaction,
            service: None,
            invalid_configs: Vec::new(),
            template: None,
            failures: Vec::new(),
            hang: HangCase::Missing,
            failures_waived: None,
            secrets: Vec::new(),
        }
    }

    /// The service name the reaction must report.
    pub fn service(mut self, service: &str) -> Self {
        self.service = Some(service.to_owned());
        self
    }

    /// A config the reaction must refuse, naming `field` (dotted when nested).
    pub fn invalid_config(mut self, config: Value, field: &str) -> Self {
        self.invalid_configs.push((config, field.to_owned()));
        self
    }

    /// A valid config holding at least one template; it must render against
    /// [`sample_event`] and succeed against the crate's peer.
    pub fn template(mut self, config: Value) -> Self {
        self.template = Some(config);
        self
    }

    /// A failure the reaction must classify as declared.
    pub fn failure(mut self, failure: Failure) -> Self {
        self.failures.push(failure);
        self
    }

    /// The attempt against a silent peer.
    pub fn hang(mut self, hang: Hang) -> Self {
        self.hang = HangCase::Given(hang);
        self
    }

    /// Runs without a hang case, for a reaction that does no I/O; `reason`
    /// says why, and is printed if the run fails.
    pub fn without_hang(mut self, reason: &str) -> Self {
        self.hang = HangCase::Waived(reason.to_owned());
        self
    }

    /// Runs without failure cases, for a reaction that does no I/O yet;
    /// `reason` says why. Every run prints the waiver, so it stays visible.
    pub fn without_failures(mut self, reason: &str) -> Self {
        self.failures_waived = Some(reason.to_owned());
        self
    }

    /// A string that must never appear in an error or an output.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secrets.push(secret.into());
        self
    }

    /// Runs every case and panics listing every violation.
    pub async fn run(self) -> Report {
        match self.check().await {
            Ok(report) => report,
            Err(violations) => panic!("{violations}"),
        }
    }

    /// Runs every case and returns what it saw, or every violation.
    pub async fn check(self) -> Result<Report, Violations> {
        let mut run = Run {
            violations: Vec::new(),
            seen: Vec::new(),
            report: Report::default(),
        };
        for waiver in self.waivers() {
            eprintln!("conformance of `{}`: {waiver}", self.reaction.service());
        }
        self.check_service(&mut run);
        self.check_invalid_configs(&mut run).await;
        self.check_template(&mut run).await;
        self.check_failures(&mut run).await;
        self.check_hang(&mut run).await;
        self.check_secrets(&mut run);

        if run.violations.is_empty() {
            return Ok(run.report);
        }
        for waiver in self.waivers() {
            run.violate(format!("({waiver})"));
        }
        // Violations quote configs and errors, which may hold the secrets.
        let violations = run
            .violations
            .into_iter()
            .map(|violation| redact(violation, &self.secrets))
            .collect();
        Err(Violations(violations))
    }

    /// The checks this run skips, and why.
    fn waivers(&self) -> Vec<String> {
        let mut waivers = Vec::new();
        if let Some(reason) = &self.failures_waived {
            waivers.push(format!("no failure case was run: {reason}"));
        }
        if let HangCase::Waived(reason) = &self.hang {
            waivers.push(format!("no hang case was run: {reason}"));
        }
        waivers
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::reaction::{ConfigError, ReactionContext};

    /// A reaction over an in-memory "service" whose behaviour is chosen by the
    /// config's `target`: the kit's own test subject, not a stand-in for a
    /// real service.
    struct Toy {
        leaks_secret: bool,
        ignores_timeout: bool,
    }

    const SECRET: &str = "toy-s3cret-value";

    #[async_trait]
    impl Reaction for Toy {
        fn service(&self) -> &'static str {
            "toy"
        }

        fn validate(&self, config: &Value) -> Result<(), ConfigError> {
            match config.get("target") {
                Some(Value::String(_)) => Ok(()),
                _ => Err(ConfigError::new("target", "must be a string")),
            }
        }

        async fn execute(&self, context: &ReactionContext) -> Result<Outcome, ReactionError> {
            self.validate(&context.config)?;
            let target = context.config["target"].as_str().unwrap_or_default();
            match target {
                "busy" => Err(ReactionError::retryable("busy", "try later")),
                "gone" if self.leaks_secret => Err(ReactionError::permanent(
                    "not_found",
                    format!("no {SECRET}"),
                )),
                "gone" => Err(ReactionError::permanent("not_found", "no such target")),
                "silent" if self.ignores_timeout => {
                    std::future::pending::<()>().await;
                    unreachable!("a pending future never completes")
                }
                "silent" => {
                    tokio::time::sleep(context.timeout).await;
                    Err(ReactionError::timed_out(context.timeout))
                }
                other => Ok(Outcome::new(json!({"target": other}))),
            }
        }
    }

    fn harness(toy: Toy) -> Conformance {
        Conformance::new(toy)
            .service("toy")
            .invalid_config(json!({}), "target")
            .template(json!({"target": "t-{{ payload.repository }}"}))
            .failure(Failure::retryable(
                "busy",
                json!({"target": "busy"}),
                "busy",
            ))
            .failure(Failure::permanent(
                "gone",
                json!({"target": "gone"}),
                "not_found",
            ))
            .hang(
                Hang::new(json!({"target": "silent"}))
                    .timeout(Duration::from_millis(100))
                    .grace(Duration::from_millis(400)),
            )
            .secret(SECRET)
    }

    #[tokio::test]
    async fn a_conforming_reaction_passes_and_reports_what_it_did() {
        let toy = Toy {
            leaks_secret: false,
            ignores_timeout: false,
        };
        let report = harness(toy).run().await;
        assert_eq!(report.rendered_config, Some(json!({"target": "t-area"})));
        assert_eq!(
            report.template_outcome.unwrap().output,
            json!({"target": "t-area"})
        );
        assert_eq!(report.failures.len(), 2);
        assert!(
            matches!(report.hang, Some(HangResult::Returned { ref error, .. }) if error.code == "timeout"),
            "{:?}",
            report.hang
        );
    }

    #[tokio::test]
    async fn a_cancelled_hang_is_accepted_and_reported() {
        let toy = Toy {
            leaks_secret: false,
            ignores_timeout: true,
        };
        let report = harness(toy).run().await;
        assert!(
            matches!(report.hang, Some(HangResult::Cancelled { .. })),
            "{:?}",
            report.hang
        );
    }

    #[tokio::test]
    async fn leaks_wrong_fields_and_wrong_classes_are_all_reported() {
        let toy = Toy {
            leaks_secret: true,
            ignores_timeout: false,
        };
        let violations = harness(toy)
            .service("other")
            .invalid_config(json!({"target": 7, "extra": true}), "extra")
            .failure(Failure::retryable(
                "misdeclared",
                json!({"target": "gone"}),
                "not_found",
            ))
            .check()
            .await
            .expect_err("the toy leaks and misclassifies")
            .0;
        let all = violations.join("\n");
        assert!(all.contains("expected `other`"), "{all}");
        assert!(
            all.contains("named field `target`, expected `extra`"),
            "{all}"
        );
        assert!(
            all.contains("failure `misdeclared`: expected Retryable"),
            "{all}"
        );
        assert!(
            all.contains("failure `gone`: error: secret #1 appears"),
            "{all}"
        );
        assert!(
            !all.contains(SECRET),
            "violations never quote a secret: {all}"
        );
    }

    #[tokio::test]
    async fn missing_cases_and_short_secrets_are_violations() {
        let toy = Toy {
            leaks_secret: false,
            ignores_timeout: false,
        };
        let violations = Conformance::new(toy)
            .secret("abc")
            .check()
            .await
            .expect_err("nothing was declared")
            .0;
        let all = violations.join("\n");
        for expected in [
            "no invalid config case",
            "no template case",
            "no retryable failure case",
            "no permanent failure case",
            "no hang case",
            "secret #1 is shorter",
        ] {
            assert!(all.contains(expected), "missing `{expected}` in:\n{all}");
        }
    }

    #[tokio::test]
    async fn waived_cases_are_skipped_but_named_when_something_else_fails() {
        let conformance = || {
            Conformance::new(Toy {
                leaks_secret: false,
                ignores_timeout: false,
            })
            .invalid_config(json!({}), "target")
            .template(json!({"target": "{{ event.id }}"}))
            .without_failures("no service yet")
            .without_hang("no service yet")
        };
        let report = conformance().run().await;
        assert!(report.failures.is_empty() && report.hang.is_none());

        let violations = conformance()
            .invalid_config(json!({"target": "fine"}), "target")
            .check()
            .await
            .expect_err("a valid config is declared invalid")
            .0;
        assert!(
            violations.contains(&"(no failure case was run: no service yet)".to_owned()),
            "{violations:?}"
        );
    }

    #[tokio::test]
    async fn a_template_without_templates_is_a_violation() {
        let toy = Toy {
            leaks_secret: false,
            ignores_timeout: false,
        };
        let violations = harness(toy)
            .template(json!({"target": "plain"}))
            .check()
            .await
            .expect_err("the template case renders nothing")
            .0;
        assert!(
            violations.iter().any(|v| v.contains("holds no template")),
            "{violations:?}"
        );
    }
}
