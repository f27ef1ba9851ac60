//! The retry schedule: a sorted set of `service|execution_id` members scored by
//! the time the next attempt is due, in milliseconds since the Unix epoch.
//!
//! It is the fast path that wakes a worker on time; PostgreSQL's
//! `next_attempt_at` is the truth, and the worker re-enqueues from there any
//! retry this set lost. Moving due members to their job streams is one Lua
//! script, so two workers never both move the same member.
//!
//! # Limitations
//!
//! The script derives job stream keys from the members instead of receiving them
//! as KEYS, which Redis Cluster does not allow: the worker targets a single
//! Redis server (or a primary with replicas).

use uuid::Uuid;

use crate::connection::Redis;
use crate::error::Error;

/// A retry to schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledRetry {
    /// The execution's service.
    pub service: String,
    /// The execution.
    pub execution_id: Uuid,
    /// When it is due, in milliseconds since the Unix epoch.
    pub due_at_ms: i64,
}

const MOVE_DUE: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
    local separator = string.find(member, '|', 1, true)
    if separator then
        local service = string.sub(member, 1, separator - 1)
        local execution = string.sub(member, separator + 1)
        redis.call('XADD', ARGV[3] .. service, '*', 'execution', execution)
    end
    redis.call('ZREM', KEYS[1], member)
end
return #due
"#;

impl Redis {
    /// Adds retries to the schedule in one command.
    pub async fn schedule_retries(&self, retries: &[ScheduledRetry]) -> Result<(), Error> {
        if retries.is_empty() {
            return Ok(());
        }
        let mut command = redis::cmd("ZADD");
        command.arg(self.keys().retries());
        for retry in retries {
            command
                .arg(retry.due_at_ms)
                .arg(format!("{}|{}", retry.service, retry.execution_id));
        }
        let mut connection = self.connection.clone();
        command.query_async::<u64>(&mut connection).await?;
        Ok(())
    }

    /// Moves up to `limit` retries due at `now_ms` to their job streams; returns
    /// how many moved.
    pub async fn enqueue_due_retries(&self, now_ms: i64, limit: usize) -> Result<usize, Error> {
        let script = redis::Script::new(MOVE_DUE);
        let mut connection = self.connection.clone();
        Ok(script
            .key(self.keys().retries())
            .arg(now_ms)
            .arg(limit)
            .arg(self.keys().jobs_prefix())
            .invoke_async(&mut connection)
            .await?)
    }

    /// The number of scheduled retries, and the due time of the earliest.
    pub async fn retry_schedule(&self) -> Result<(u64, Option<i64>), Error> {
        let mut connection = self.connection.clone();
        let (size, first): (u64, Vec<(String, f64)>) = redis::pipe()
            .cmd("ZCARD")
            .arg(self.keys().retries())
            .cmd("ZRANGE")
            .arg(self.keys().retries())
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .query_async(&mut connection)
            .await?;
        Ok((size, first.first().map(|(_, score)| *score as i64)))
    }
}
