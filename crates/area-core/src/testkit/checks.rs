//! The checks a [`Conformance`] run makes, case by case, and the record of
//! what it saw so secrets can be looked for in every error and output.

use std::time::Instant;

use super::sample::{context, context_with_timeout, sample_event};
use super::{
    CONFIG_REFUSAL_LIMIT, Conformance, DROP_LIMIT, HangCase, HangResult, MIN_SECRET_CHARS, Report,
};
use crate::reaction::{ConfigError, ErrorClass, Outcome, ReactionError};
use crate::template::render_config;

impl Conformance {
    pub(super) fn check_service(&self, run: &mut Run) {
        let service = self.reaction.service();
        let is_stream_safe = !service.is_empty()
            && service
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
        if !is_stream_safe {
            run.violate(format!(
                "service name `{service}` must be lowercase ASCII letters, digits and dashes: it names a job stream"
            ));
        }
        if let Some(expected) = &self.service
            && expected != service
        {
            run.violate(format!("service() is `{service}`, expected `{expected}`"));
        }
    }

    pub(super) async fn check_invalid_configs(&self, run: &mut Run) {
        if self.invalid_configs.is_empty() {
            run.violate("no invalid config case: declare at least one with `invalid_config`");
        }
        for (config, field) in &self.invalid_configs {
            let case = format!("invalid config {config}");
            match self.reaction.validate(config) {
                Ok(()) => run.violate(format!("{case}: validate() accepted it")),
                Err(error) => {
                    run.see_config_error(&case, &error);
                    if error.field != *field {
                        run.violate(format!(
                            "{case}: validate() named field `{}`, expected `{field}` ({error})",
                            error.field
                        ));
                    }
                }
            }

            let attempt_context = context(config.clone());
            let attempt = self.reaction.execute(&attempt_context);
            let result = match tokio::time::timeout(CONFIG_REFUSAL_LIMIT, attempt).await {
                Ok(result) => result,
                Err(_) => {
                    run.violate(format!(
                        "{case}: execute() did not refuse it within {CONFIG_REFUSAL_LIMIT:?}; validate before any I/O"
                    ));
                    continue;
                }
            };
            match result {
                Ok(outcome) => {
                    run.see_outcome(&case, &outcome);
                    run.violate(format!("{case}: execute() succeeded"));
                }
                Err(error) => {
                    run.see_error(&case, &error);
                    let names_field = error.message.contains(&format!("`{field}`"));
                    if error.class != ErrorClass::Permanent
                        || error.code != "invalid_config"
                        || !names_field
                    {
                        run.violate(format!(
                            "{case}: execute() must fail as permanent `invalid_config` naming `{field}`, got {error:?}"
                        ));
                    }
                }
            }
        }
    }

    pub(super) async fn check_template(&self, run: &mut Run) {
        let Some(template) = &self.template else {
            run.violate("no template case: declare a valid config with templates with `template`");
            return;
        };
        let rendered = match render_config(template, &sample_event()) {
            Ok(rendered) => rendered,
            Err(error) => {
                run.violate(format!("template case: {error}"));
                return;
            }
        };
        if rendered == *template {
            run.violate("template case: the config holds no template (`{{ ... }}`) to render");
        }
        if let Err(error) = self.reaction.validate(&rendered) {
            run.see_config_error("template case", &error);
            run.violate(format!(
                "template case: the rendered config is invalid: {error}"
            ));
            return;
        }

        let attempt_context = context(rendered.clone());
        let guard = attempt_context.timeout;
        let attempt = self.reaction.execute(&attempt_context);
        match tokio::time::timeout(guard, attempt).await {
            Ok(Ok(outcome)) => {
                run.see_outcome("template case", &outcome);
                run.report.template_outcome = Some(outcome);
            }
            Ok(Err(error)) => {
                run.see_error("template case", &error);
                run.violate(format!(
                    "template case: the attempt failed against the peer: {error}"
                ));
            }
            Err(_) => run.violate(format!("template case: no answer within {guard:?}")),
        }
        run.report.rendered_config = Some(rendered);
    }

    pub(super) async fn check_failures(&self, run: &mut Run) {
        let declares = |wanted: fn(&ErrorClass) -> bool| {
            self.failures.iter().any(|failure| wanted(&failure.class))
        };
        let is_waived = self.failures_waived.is_some();
        if !is_waived && !declares(|class| *class == ErrorClass::Retryable) {
            run.violate("no retryable failure case: every service has transient failures");
        }
        if !is_waived && !declares(|class| *class == ErrorClass::Permanent) {
            run.violate("no permanent failure case: every service refuses some requests for good");
        }

        for failure in &self.failures {
            let case = format!("failure `{}`", failure.name);
            let reaction = failure.reaction.as_ref().unwrap_or(&self.reaction);
            let guard = failure.context.timeout;
            let result = tokio::time::timeout(guard, reaction.execute(&failure.context)).await;
            let error = match result {
                Err(_) => {
                    run.violate(format!("{case}: no answer within {guard:?}"));
                    continue;
                }
                Ok(Ok(outcome)) => {
                    run.see_outcome(&case, &outcome);
                    run.violate(format!("{case}: the attempt succeeded"));
                    continue;
                }
                Ok(Err(error)) => error,
            };
            run.see_error(&case, &error);

            if error.class != failure.class || error.code != failure.code {
                run.violate(format!(
                    "{case}: expected {:?} `{}`, got {:?} `{}` ({})",
                    failure.class, failure.code, error.class, error.code, error.message
                ));
            }
            if let Some(expected) = failure.possible_duplicate
                && error.possible_duplicate != expected
            {
                run.violate(format!(
                    "{case}: possible_duplicate is {}, expected {expected}",
                    error.possible_duplicate
                ));
            }
            if error.message.trim().is_empty() {
                run.violate(format!("{case}: the error has no message"));
            }
            run.report.failures.push((failure.name.clone(), error));
        }
    }

    pub(super) async fn check_hang(&self, run: &mut Run) {
        let hang = match &self.hang {
            HangCase::Given(hang) => hang,
            HangCase::Waived(_) => return,
            HangCase::Missing => {
                run.violate(
                    "no hang case: declare one against a silent peer with `hang`, or say why there is none with `without_hang`",
                );
                return;
            }
        };
        let reaction = hang.reaction.as_ref().unwrap_or(&self.reaction);
        let attempt_context = context_with_timeout(hang.config.clone(), hang.timeout);

        let started = Instant::now();
        let mut attempt = Box::pin(reaction.execute(&attempt_context));
        let result = tokio::time::timeout(hang.timeout + hang.grace, &mut attempt).await;
        let elapsed = started.elapsed();
        match result {
            Ok(Ok(outcome)) => {
                run.see_outcome("hang case", &outcome);
                run.violate("hang case: the attempt succeeded against a peer that never answers");
            }
            Ok(Err(error)) => {
                run.see_error("hang case", &error);
                run.report.hang = Some(HangResult::Returned { error, elapsed });
            }
            Err(_) => {
                // The engine cancels an attempt at its timeout by dropping it.
                let dropping = Instant::now();
                drop(attempt);
                let drop_time = dropping.elapsed();
                if drop_time > DROP_LIMIT {
                    run.violate(format!(
                        "hang case: dropping the cancelled attempt took {drop_time:?}"
                    ));
                }
                run.report.hang = Some(HangResult::Cancelled { drop_time });
            }
        }
    }

    pub(super) fn check_secrets(&self, run: &mut Run) {
        for (index, secret) in self.secrets.iter().enumerate() {
            if secret.chars().count() < MIN_SECRET_CHARS {
                run.violate(format!(
                    "secret #{} is shorter than {MIN_SECRET_CHARS} characters and would match by chance",
                    index + 1
                ));
                continue;
            }
            let leaks: Vec<String> = run
                .seen
                .iter()
                .filter(|(_, text)| text.contains(secret.as_str()))
                .map(|(case, _)| case.clone())
                .collect();
            for case in leaks {
                run.violate(format!("{case}: secret #{} appears in it", index + 1));
            }
        }
    }
}

/// `text` with every secret of at least [`MIN_SECRET_CHARS`] characters
/// replaced by its number.
pub(super) fn redact(mut text: String, secrets: &[String]) -> String {
    for (index, secret) in secrets.iter().enumerate() {
        if secret.chars().count() >= MIN_SECRET_CHARS {
            text = text.replace(secret.as_str(), &format!("[secret #{}]", index + 1));
        }
    }
    text
}

/// The state of one run: what went wrong and every text a secret could leak into.
pub(super) struct Run {
    pub(super) violations: Vec<String>,
    /// (case, text) for every error and output seen.
    pub(super) seen: Vec<(String, String)>,
    pub(super) report: Report,
}

impl Run {
    pub(super) fn violate(&mut self, violation: impl Into<String>) {
        self.violations.push(violation.into());
    }

    fn see_config_error(&mut self, case: &str, error: &ConfigError) {
        self.seen.push((
            format!("{case}: validate() error"),
            format!("{error} {error:?}"),
        ));
    }

    fn see_error(&mut self, case: &str, error: &ReactionError) {
        let stored = serde_json::to_string(error).expect("a reaction error serializes");
        self.seen.push((
            format!("{case}: error"),
            format!("{error} {error:?} {stored}"),
        ));
    }

    fn see_outcome(&mut self, case: &str, outcome: &Outcome) {
        self.seen
            .push((format!("{case}: output"), outcome.output.to_string()));
    }
}
