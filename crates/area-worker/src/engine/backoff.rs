//! Retrying an infrastructure operation (a query, a Redis command) until it
//! succeeds, with capped exponential backoff.
//!
//! The engine never acknowledges an entry whose effects are not stored, so when
//! PostgreSQL or Redis is away it waits for them rather than dropping work. The
//! wait ends early only when the hard-stop token fires (the drain deadline
//! passed); the caller then leaves its entries pending for another worker.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

const FIRST_DELAY: Duration = Duration::from_millis(50);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Why a persistent operation ended without a result.
#[derive(Debug)]
pub(crate) enum Abandoned<E> {
    /// The error cannot go away by waiting.
    Permanent(E),
    /// The hard stop fired while waiting.
    Stopped,
}

/// Runs `operation` until it succeeds, its error is not transient, or `hard_stop`
/// fires.
pub(crate) async fn until_ok<T, E, F, Fut>(
    what: &'static str,
    hard_stop: &CancellationToken,
    is_transient: impl Fn(&E) -> bool,
    mut operation: F,
) -> Result<T, Abandoned<E>>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delay = FIRST_DELAY;
    let mut failures = 0u32;
    loop {
        let error = match operation().await {
            Ok(value) => {
                if failures > 0 {
                    tracing::info!(operation = what, failures, "recovered");
                }
                return Ok(value);
            }
            Err(error) => error,
        };
        if !is_transient(&error) {
            return Err(Abandoned::Permanent(error));
        }
        failures += 1;
        if failures == 1 || failures.is_power_of_two() {
            tracing::warn!(operation = what, failures, error = %error, "failed, retrying");
        }
        metrics::counter!("area_infrastructure_retries_total", "operation" => what).increment(1);
        tokio::select! {
            () = hard_stop.cancelled() => return Err(Abandoned::Stopped),
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_DELAY);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_until_success() {
        let calls = AtomicU32::new(0);
        let result = until_ok(
            "test",
            &CancellationToken::new(),
            |_: &String| true,
            || {
                let call = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if call < 3 {
                        Err(format!("down {call}"))
                    } else {
                        Ok(call)
                    }
                }
            },
        )
        .await;
        assert_eq!(result.unwrap(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_once_on_permanent_errors_and_on_hard_stop() {
        let permanent = until_ok(
            "test",
            &CancellationToken::new(),
            |_: &String| false,
            || async { Err::<(), _>("bad".to_owned()) },
        )
        .await;
        assert!(matches!(permanent, Err(Abandoned::Permanent(error)) if error == "bad"));

        let stop = CancellationToken::new();
        stop.cancel();
        let stopped = until_ok(
            "test",
            &stop,
            |_: &String| true,
            || async { Err::<(), _>("down".to_owned()) },
        )
        .await;
        assert!(matches!(stopped, Err(Abandoned::Stopped)));
    }
}
