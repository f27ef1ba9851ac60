//! One attempt of one execution: render, validate, run under a timeout, and
//! decide what the outcome means for the execution.

use area_core::{
    ErrorClass, Event, ReactionContext, ReactionError, RetryDecision, render_config_owned,
};
use area_store::{AttemptRecord, ClaimedExecution, RecordedStatus};
use serde_json::Value;
use tracing::Instrument;

use super::Shared;
use super::sanitize::sanitize_value;

/// Key of a reaction's config reserved for its own retry policy.
const RETRY_KEY: &str = "retry";

/// Runs the attempt and returns what to record. Never fails: every failure is
/// an outcome of the attempt.
pub(crate) async fn run(shared: &Shared, mut execution: ClaimedExecution) -> AttemptRecord {
    // One span per job entry: everything logged about this attempt, the
    // reaction's own logs included, carries the execution, event and service.
    let span = tracing::info_span!(
        "job",
        execution_id = %execution.id,
        event_id = %execution.event_id,
        service = %execution.service,
        attempt = execution.attempt,
    );
    let started = std::time::Instant::now();

    let attempt = u32::try_from(execution.attempt).unwrap_or(u32::MAX);
    let mut policy = shared.settings.retry_policy;
    let prepared = span.in_scope(|| prepare(shared, &mut execution, &mut policy));
    let result = match prepared {
        Ok(context) => {
            let reaction = shared
                .registry
                .get(&execution.service)
                .expect("jobs are read only from streams of registered services");
            let bounded = tokio::time::timeout(context.timeout, reaction.execute(&context));
            match bounded.instrument(span.clone()).await {
                Ok(result) => result,
                Err(_) => Err(ReactionError::timed_out(context.timeout)),
            }
        }
        Err(error) => Err(error),
    };
    let _entered = span.enter();

    let elapsed = started.elapsed();
    metrics::histogram!("area_attempt_duration_seconds", "service" => execution.service.clone())
        .record(elapsed.as_secs_f64());
    match result {
        Ok(outcome) => {
            let mut output = outcome.output;
            sanitize_value(&mut output);
            tracing::debug!("attempt delivered");
            AttemptRecord {
                id: execution.id,
                attempt: execution.attempt,
                status: RecordedStatus::Ok,
                output: Some(output),
                error: None,
            }
        }
        Err(error) => {
            let jitter = rand::random::<f64>() * 2.0 - 1.0;
            let status = match policy.decide(attempt, &error.class, jitter) {
                RetryDecision::RetryAfter(delay) => RecordedStatus::Retry { delay },
                RetryDecision::GiveUp => RecordedStatus::Failed,
            };
            log_failure(&error, status);
            let mut error_json = serde_json::to_value(&error).unwrap_or(Value::Null);
            sanitize_value(&mut error_json);
            // A failure that could have succeeded later, failed only because
            // the policy allows no more attempts: say so on the record.
            if matches!(status, RecordedStatus::Failed)
                && !matches!(error.class, ErrorClass::Permanent)
                && let Value::Object(fields) = &mut error_json
            {
                fields.insert("retries_exhausted".to_owned(), Value::Bool(true));
            }
            AttemptRecord {
                id: execution.id,
                attempt: execution.attempt,
                status,
                output: None,
                error: Some(error_json),
            }
        }
    }
}

/// Builds the attempt's context; every error here is permanent. The config
/// and the event payload move out of `execution` into the context (the
/// attempt needs them nowhere else), which saves a deep copy of each.
fn prepare(
    shared: &Shared,
    execution: &mut ClaimedExecution,
    policy: &mut area_core::RetryPolicy,
) -> Result<ReactionContext, ReactionError> {
    let Some(mut config) = execution.config.take() else {
        return Err(ReactionError::permanent(
            "reaction_deleted",
            "the reaction no longer exists",
        ));
    };
    let reaction = shared
        .registry
        .get(&execution.service)
        .expect("jobs are read only from streams of registered services");
    if execution.in_doubt && shared.settings.fail_in_doubt && !reaction.deduplicates_by_key() {
        return Err(ReactionError::permanent(
            "in_doubt",
            "the previous attempt's worker stopped mid-attempt and this reaction cannot drop a \
             repeat; failed by the in-doubt policy for a person to check whether it was delivered",
        ));
    }
    if let Some(overrides) = config
        .as_object_mut()
        .and_then(|fields| fields.remove(RETRY_KEY))
    {
        *policy = policy.with_overrides(&overrides)?;
    }
    let event = Event::from_value(
        std::mem::take(&mut execution.input_payload),
        &execution.event_id,
    )
    .map_err(|error| ReactionError::permanent("invalid_event", error.to_string()))?;
    let rendered = render_config_owned(config, &event)
        .map_err(|error| ReactionError::permanent("template", error.to_string()))?;
    reaction.validate(&rendered)?;

    Ok(ReactionContext {
        config: rendered,
        event,
        execution_id: execution.id,
        reaction_id: execution.reaction_id,
        dedup_key: execution.dedup_key.clone(),
        attempt: u32::try_from(execution.attempt).unwrap_or(u32::MAX),
        timeout: shared.settings.reaction_timeout,
    })
}

fn log_failure(error: &ReactionError, status: RecordedStatus) {
    match status {
        RecordedStatus::Retry { delay } => tracing::warn!(
            code = %error.code,
            retry_in_ms = delay.as_millis() as u64,
            rate_limited = matches!(error.class, ErrorClass::RateLimited { .. }),
            "reaction failed, will retry"
        ),
        _ => tracing::warn!(
            code = %error.code,
            error = %error.message,
            "reaction failed for good"
        ),
    }
}
