//! Reading a stream through the consumer group, and claiming entries that other
//! consumers left pending.
//!
//! Each consumer owns a connection: XREADGROUP with BLOCK holds its connection
//! until entries arrive or the block time ends, and on a shared multiplexed
//! connection that would delay every ack and publish queued behind it. The
//! connection's response timeout is longer than the block time, since a blocked
//! read is not a hung server.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamReadReply};

use crate::connection::{Redis, manager};
use crate::entry::Entry;
use crate::error::Error;

/// Entries taken over from other consumers by [`Consumer::claim_idle`].
#[derive(Debug, Default)]
pub struct Claimed {
    /// Entries now pending on this consumer, with their delivery counts.
    pub entries: Vec<Entry>,
    /// Ids that were pending but no longer exist in the stream (deleted or
    /// trimmed); Redis removed them from the pending list.
    pub deleted: Vec<String>,
}

/// One consumer of one stream in the worker group.
pub struct Consumer {
    connection: ConnectionManager,
    stream: String,
    group: String,
    name: String,
    block: Duration,
    claim_cursor: String,
}

impl Consumer {
    /// A consumer named `name` of `stream`, on a connection of its own.
    pub async fn new(redis: &Redis, stream: &str, name: &str) -> Result<Self, Error> {
        let block = redis.options.block;
        let connection = manager(&redis.client, block + Duration::from_secs(5)).await?;
        Ok(Self {
            connection,
            stream: stream.to_owned(),
            group: redis.options.group.clone(),
            name: name.to_owned(),
            block,
            claim_cursor: "0-0".into(),
        })
    }

    /// The stream this consumer reads.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Up to `count` new entries, waiting at most the block time for the first.
    pub async fn read(&mut self, count: usize) -> Result<Vec<Entry>, Error> {
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.group)
            .arg(&self.name)
            .arg("COUNT")
            .arg(count.max(1))
            .arg("BLOCK")
            .arg(self.block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(&mut self.connection)
            .await?;
        let Some(reply) = reply else {
            return Ok(Vec::new());
        };
        Ok(reply
            .keys
            .into_iter()
            .flat_map(|key| key.ids)
            .map(Entry::from_stream_id)
            .collect())
    }

    /// Takes over up to `count` entries pending for longer than `min_idle` on any
    /// consumer of the group. Successive calls walk the pending list; the walk
    /// starts over after reaching its end.
    pub async fn claim_idle(&mut self, min_idle: Duration, count: usize) -> Result<Claimed, Error> {
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.name)
            .arg(min_idle.as_millis() as u64)
            .arg(&self.claim_cursor)
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut self.connection)
            .await?;
        self.claim_cursor = reply.next_stream_id;

        let mut entries: Vec<Entry> = reply
            .claimed
            .into_iter()
            .map(Entry::from_stream_id)
            .collect();
        if !entries.is_empty() {
            self.fill_delivery_counts(&mut entries).await?;
        }
        Ok(Claimed {
            entries,
            deleted: reply.deleted_ids,
        })
    }

    /// XAUTOCLAIM does not say how often an entry was delivered; XPENDING does.
    async fn fill_delivery_counts(&mut self, entries: &mut [Entry]) -> Result<(), Error> {
        let first = entries
            .first()
            .map(|entry| entry.id.clone())
            .unwrap_or_default();
        let last = entries
            .last()
            .map(|entry| entry.id.clone())
            .unwrap_or_default();
        let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&first)
            .arg(&last)
            .arg(entries.len())
            .arg(&self.name)
            .query_async(&mut self.connection)
            .await?;
        for entry in entries.iter_mut() {
            entry.delivery_count = pending
                .iter()
                .find(|(id, ..)| *id == entry.id)
                .map(|(_, _, _, delivered)| *delivered);
        }
        Ok(())
    }
}
