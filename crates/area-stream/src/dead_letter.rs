//! The dead-letter stream: entries that can never be processed, kept with the
//! reason so that a person can read them and, once the cause is fixed, redrive
//! them to the stream they came from.
//!
//! A dead letter keeps the original entry's fields unchanged and adds fields
//! under the `dead.` prefix: `dead.stream`, `dead.entry_id`, `dead.code`,
//! `dead.reason`, `dead.at_ms` and, when known, `dead.delivery_count`.

use std::time::{SystemTime, UNIX_EPOCH};

use redis::streams::StreamRangeReply;
use serde::Serialize;

use crate::connection::Redis;
use crate::entry::Entry;
use crate::error::Error;

const META_PREFIX: &str = "dead.";

/// Why an entry was given up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetterReason {
    /// A short stable code, e.g. `invalid_json`, `unknown_area`, `poison`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

impl DeadLetterReason {
    /// A reason with `code` and `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// A dead letter as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// Its id in the dead-letter stream.
    pub id: String,
    /// The stream it came from.
    pub stream: String,
    /// Its id in that stream.
    pub entry_id: String,
    /// The reason's code.
    pub code: String,
    /// The reason.
    pub reason: String,
    /// When it was dead-lettered, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// How often it had been delivered, when known.
    pub delivery_count: Option<u64>,
    /// The original fields, as text (lossy for non-UTF-8 bytes).
    pub fields: Vec<(String, String)>,
}

impl Redis {
    /// Moves `entry` of `source_stream` to the dead-letter stream and acknowledges
    /// it, atomically. Returns the dead letter's id.
    pub async fn dead_letter(
        &self,
        source_stream: &str,
        entry: &Entry,
        reason: &DeadLetterReason,
    ) -> Result<String, Error> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let mut add = redis::cmd("XADD");
        add.arg(self.keys().dead_letters()).arg("*");
        for (field, value) in &entry.fields {
            add.arg(field).arg(value);
        }
        add.arg("dead.stream").arg(source_stream);
        add.arg("dead.entry_id").arg(&entry.id);
        add.arg("dead.code").arg(&reason.code);
        add.arg("dead.reason").arg(&reason.message);
        add.arg("dead.at_ms").arg(now_ms as u64);
        if let Some(count) = entry.delivery_count {
            add.arg("dead.delivery_count").arg(count);
        }

        let mut connection = self.connection.clone();
        let (id, _acked): (String, u64) = redis::pipe()
            .atomic()
            .add_command(add)
            .cmd("XACK")
            .arg(source_stream)
            .arg(&self.options.group)
            .arg(&entry.id)
            .query_async(&mut connection)
            .await?;
        Ok(id)
    }

    /// Dead letters from id `after` (exclusive; `None` for the oldest), at most `count`.
    pub async fn dead_letters(
        &self,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<DeadLetter>, Error> {
        let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        let mut connection = self.connection.clone();
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.keys().dead_letters())
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut connection)
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|stream_id| to_dead_letter(Entry::from_stream_id(stream_id)))
            .collect())
    }

    /// The number of dead letters.
    pub async fn dead_letter_count(&self) -> Result<u64, Error> {
        let mut connection = self.connection.clone();
        Ok(redis::cmd("XLEN")
            .arg(self.keys().dead_letters())
            .query_async(&mut connection)
            .await?)
    }

    /// Re-publishes a dead letter's original fields to the stream it came from and
    /// removes it from the dead-letter stream. Returns the new entry id, or `None`
    /// when no dead letter has that id.
    pub async fn redrive(&self, dead_letter_id: &str) -> Result<Option<String>, Error> {
        let mut connection = self.connection.clone();
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.keys().dead_letters())
            .arg(dead_letter_id)
            .arg(dead_letter_id)
            .query_async(&mut connection)
            .await?;
        let Some(stream_id) = reply.ids.into_iter().next() else {
            return Ok(None);
        };
        let entry = Entry::from_stream_id(stream_id);
        let Some(source) = entry.field("dead.stream") else {
            return Err(Error::Reply(format!(
                "dead letter {dead_letter_id} names no stream"
            )));
        };
        let source = String::from_utf8_lossy(source).into_owned();

        let mut add = redis::cmd("XADD");
        add.arg(&source).arg("*");
        for (field, value) in entry
            .fields
            .iter()
            .filter(|(field, _)| !field.starts_with(META_PREFIX))
        {
            add.arg(field).arg(value);
        }
        let (new_id, _deleted): (String, u64) = redis::pipe()
            .atomic()
            .add_command(add)
            .cmd("XDEL")
            .arg(self.keys().dead_letters())
            .arg(dead_letter_id)
            .query_async(&mut connection)
            .await?;
        Ok(Some(new_id))
    }
}

fn to_dead_letter(entry: Entry) -> DeadLetter {
    let text = |name: &str| {
        entry
            .field(name)
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .unwrap_or_default()
    };
    DeadLetter {
        stream: text("dead.stream"),
        entry_id: text("dead.entry_id"),
        code: text("dead.code"),
        reason: text("dead.reason"),
        at_ms: text("dead.at_ms").parse().unwrap_or_default(),
        delivery_count: text("dead.delivery_count").parse().ok(),
        fields: entry
            .fields
            .iter()
            .filter(|(field, _)| !field.starts_with(META_PREFIX))
            .map(|(field, value)| (field.clone(), String::from_utf8_lossy(value).into_owned()))
            .collect(),
        id: entry.id,
    }
}
