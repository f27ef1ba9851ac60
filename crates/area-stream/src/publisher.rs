//! Appending events and jobs, and acknowledging entries.

use uuid::Uuid;

use crate::connection::Redis;
use crate::error::Error;

/// A job: run one execution on its service's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The service, which names the stream.
    pub service: String,
    /// The execution to run.
    pub execution_id: Uuid,
}

/// The field of an event entry that holds the event's JSON.
pub const EVENT_FIELD: &str = "event";
/// The field of a job entry that holds the execution id.
pub const EXECUTION_FIELD: &str = "execution";

impl Redis {
    /// Appends an event (its JSON text) to the event stream; returns the entry id.
    pub async fn publish_event(&self, event_json: &str) -> Result<String, Error> {
        self.publish_fields(
            &self.keys().events(),
            &[(EVENT_FIELD, event_json.as_bytes())],
        )
        .await
    }

    /// Appends an entry with the given fields to `stream`; returns the entry id.
    pub async fn publish_fields(
        &self,
        stream: &str,
        fields: &[(&str, &[u8])],
    ) -> Result<String, Error> {
        let mut connection = self.connection.clone();
        let mut command = redis::cmd("XADD");
        command.arg(stream).arg("*");
        for (field, value) in fields {
            command.arg(*field).arg(*value);
        }
        Ok(command.query_async(&mut connection).await?)
    }

    /// Appends jobs to their services' streams in one round trip.
    pub async fn enqueue_jobs(&self, jobs: &[Job]) -> Result<(), Error> {
        if jobs.is_empty() {
            return Ok(());
        }
        let jobs_prefix = self.keys().jobs_prefix();
        let mut pipeline = redis::pipe();
        let mut key = String::with_capacity(jobs_prefix.len() + 16);
        let mut id_text = Uuid::encode_buffer();
        for job in jobs {
            key.clear();
            key.push_str(&jobs_prefix);
            key.push_str(&job.service);
            let id = job.execution_id.hyphenated().encode_lower(&mut id_text);
            pipeline
                .cmd("XADD")
                .arg(&key)
                .arg("*")
                .arg(EXECUTION_FIELD)
                .arg(&*id)
                .ignore();
        }
        let mut connection = self.connection.clone();
        pipeline.query_async::<()>(&mut connection).await?;
        Ok(())
    }

    /// Acknowledges entries of `stream` in one command.
    pub async fn ack(&self, stream: &str, ids: &[String]) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut connection = self.connection.clone();
        redis::cmd("XACK")
            .arg(stream)
            .arg(&self.options.group)
            .arg(ids)
            .query_async::<u64>(&mut connection)
            .await?;
        Ok(())
    }

    /// Acknowledges job entries and deletes them: a job stream has no reader but
    /// the worker group, so a finished job is kept nowhere.
    pub async fn ack_and_delete(&self, stream: &str, ids: &[String]) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut connection = self.connection.clone();
        redis::pipe()
            .cmd("XACK")
            .arg(stream)
            .arg(&self.options.group)
            .arg(ids)
            .ignore()
            .cmd("XDEL")
            .arg(stream)
            .arg(ids)
            .ignore()
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }

    /// Resets the idle time of entries pending on `consumer`, so that no other
    /// consumer claims the entries of attempts that are still running. Does not
    /// count as a delivery.
    pub async fn touch_pending(
        &self,
        stream: &str,
        consumer: &str,
        ids: &[String],
    ) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut connection = self.connection.clone();
        redis::cmd("XCLAIM")
            .arg(stream)
            .arg(&self.options.group)
            .arg(consumer)
            .arg(0)
            .arg(ids)
            .arg("JUSTID")
            .query_async::<Vec<String>>(&mut connection)
            .await?;
        Ok(())
    }
}
