//! What the streams look like right now, for the monitoring API and metrics:
//! length, consumer groups, consumers, pending entries, lag and the age of the
//! oldest pending entry of each stream.
//!
//! The figures come from XINFO GROUPS, XINFO CONSUMERS and the summary form of
//! XPENDING, in two round trips per stream. `lag` is what Redis reports (7.0
//! and later): entries not yet delivered to the group, unknown when Redis cannot
//! tell (after deletions in the middle of the stream). The age of the oldest
//! pending entry is read from its id, which holds the millisecond the entry was
//! added, against the Redis server's clock.

use redis::Value;
use serde::Serialize;

use crate::connection::Redis;
use crate::error::Error;

/// One stream and its consumer groups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StreamInfo {
    /// The stream's key.
    pub stream: String,
    /// Whether the key exists; a missing stream has no length and no groups.
    pub exists: bool,
    /// Number of entries.
    pub length: u64,
    /// Its consumer groups.
    pub groups: Vec<GroupInfo>,
}

/// One consumer group of a stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupInfo {
    /// The group's name.
    pub name: String,
    /// Entries delivered to a consumer and not yet acknowledged.
    pub pending: u64,
    /// Entries not yet delivered to any consumer of the group, when Redis knows.
    pub lag: Option<u64>,
    /// The id of the last entry delivered to the group.
    pub last_delivered_id: String,
    /// Age of the oldest pending entry (now minus the time in its id), if any.
    pub oldest_pending_age_ms: Option<u64>,
    /// The group's consumers.
    pub consumers: Vec<ConsumerInfo>,
}

/// One consumer of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConsumerInfo {
    /// The consumer's name (a worker's consumer name).
    pub name: String,
    /// Entries delivered to it and not yet acknowledged.
    pub pending: u64,
    /// Milliseconds since it last interacted with the group.
    pub idle_ms: u64,
}

impl Redis {
    /// The state of `stream` and of its groups.
    pub async fn stream_info(&self, stream: &str) -> Result<StreamInfo, Error> {
        let mut connection = self.connection.clone();
        let first: Result<(Vec<String>, u64, Value), redis::RedisError> = redis::pipe()
            .cmd("TIME")
            .cmd("XLEN")
            .arg(stream)
            .cmd("XINFO")
            .arg("GROUPS")
            .arg(stream)
            .query_async(&mut connection)
            .await;
        let (time, length, groups) = match first {
            Ok(reply) => reply,
            Err(error) if is_no_such_key(&error) => {
                return Ok(StreamInfo {
                    stream: stream.to_owned(),
                    exists: false,
                    length: 0,
                    groups: Vec::new(),
                });
            }
            Err(error) => return Err(error.into()),
        };
        let now_ms = server_time_ms(&time)?;

        let mut groups: Vec<GroupInfo> = list(groups)?
            .into_iter()
            .map(parse_group)
            .collect::<Result<_, _>>()?;
        if !groups.is_empty() {
            let mut pipeline = redis::pipe();
            for group in &groups {
                pipeline
                    .cmd("XINFO")
                    .arg("CONSUMERS")
                    .arg(stream)
                    .arg(&group.name)
                    .cmd("XPENDING")
                    .arg(stream)
                    .arg(&group.name);
            }
            let replies: Vec<Value> = pipeline.query_async(&mut connection).await?;
            for (group, pair) in groups.iter_mut().zip(replies.chunks(2)) {
                let [consumers, pending] = pair else {
                    return Err(Error::Reply("XINFO CONSUMERS / XPENDING pair".into()));
                };
                group.consumers = list(consumers.clone())?
                    .into_iter()
                    .map(parse_consumer)
                    .collect::<Result<_, _>>()?;
                group.oldest_pending_age_ms = oldest_pending_age(pending, now_ms)?;
            }
        }
        Ok(StreamInfo {
            stream: stream.to_owned(),
            exists: true,
            length,
            groups,
        })
    }

    /// The streams among `streams` that lack the worker group (or do not
    /// exist), in one round trip that also proves Redis answers.
    pub async fn missing_groups(&self, streams: &[String]) -> Result<Vec<String>, Error> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipeline = redis::pipe();
        pipeline.ignore_errors();
        for stream in streams {
            pipeline.cmd("XINFO").arg("GROUPS").arg(stream);
        }
        let mut connection = self.connection.clone();
        let replies: Vec<redis::RedisResult<Value>> = pipeline.query_async(&mut connection).await?;

        let mut missing = Vec::new();
        for (stream, reply) in streams.iter().zip(replies) {
            let has_group = match reply {
                Ok(groups) => list(groups)?
                    .into_iter()
                    .map(fields)
                    .collect::<Result<Vec<_>, _>>()?
                    .iter()
                    .any(|group| {
                        field_text(group, "name").ok() == Some(self.options.group.clone())
                    }),
                Err(error) if is_no_such_key(&error) => false,
                Err(error) => return Err(error.into()),
            };
            if !has_group {
                missing.push(stream.clone());
            }
        }
        Ok(missing)
    }

    /// The keys of every job stream under this prefix, sorted. Walks the
    /// keyspace with SCAN, so it is for people and scrapes, not the hot path.
    pub async fn job_streams(&self) -> Result<Vec<String>, Error> {
        let pattern = format!("{}*", glob_escape(&self.keys().jobs_prefix()));
        let mut connection = self.connection.clone();
        let mut cursor: u64 = 0;
        let mut streams = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .arg("TYPE")
                .arg("stream")
                .query_async(&mut connection)
                .await?;
            streams.extend(keys);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        streams.sort();
        streams.dedup();
        Ok(streams)
    }
}

fn is_no_such_key(error: &redis::RedisError) -> bool {
    error.to_string().contains("no such key")
}

fn server_time_ms(time: &[String]) -> Result<u64, Error> {
    let seconds: u64 = time
        .first()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| Error::Reply("TIME without seconds".into()))?;
    let micros: u64 = time
        .get(1)
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| Error::Reply("TIME without microseconds".into()))?;
    Ok(seconds * 1000 + micros / 1000)
}

/// The oldest pending entry's age, from the summary form of XPENDING:
/// `[count, smallest id, greatest id, [[consumer, count], ...]]`.
fn oldest_pending_age(reply: &Value, now_ms: u64) -> Result<Option<u64>, Error> {
    let items = list(reply.clone())?;
    let Some(smallest) = items.get(1) else {
        return Err(Error::Reply("XPENDING summary without smallest id".into()));
    };
    let Some(id) = text(smallest) else {
        return Ok(None);
    };
    let added_ms: u64 = id
        .split('-')
        .next()
        .and_then(|millis| millis.parse().ok())
        .ok_or_else(|| Error::Reply(format!("pending entry id {id:?}")))?;
    Ok(Some(now_ms.saturating_sub(added_ms)))
}

fn parse_group(value: Value) -> Result<GroupInfo, Error> {
    let fields = fields(value)?;
    Ok(GroupInfo {
        name: field_text(&fields, "name")?,
        pending: field_number(&fields, "pending")?.unwrap_or(0),
        lag: field_number(&fields, "lag")?,
        last_delivered_id: field_text(&fields, "last-delivered-id")?,
        oldest_pending_age_ms: None,
        consumers: Vec::new(),
    })
}

fn parse_consumer(value: Value) -> Result<ConsumerInfo, Error> {
    let fields = fields(value)?;
    Ok(ConsumerInfo {
        name: field_text(&fields, "name")?,
        pending: field_number(&fields, "pending")?.unwrap_or(0),
        idle_ms: field_number(&fields, "idle")?.unwrap_or(0),
    })
}

/// The elements of an array reply (RESP2 and RESP3 alike).
fn list(value: Value) -> Result<Vec<Value>, Error> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(Error::Reply(format!("expected an array, got {other:?}"))),
    }
}

/// The name/value pairs of a map reply: a RESP3 map, or a RESP2 flat array.
fn fields(value: Value) -> Result<Vec<(String, Value)>, Error> {
    match value {
        Value::Map(pairs) => Ok(pairs
            .into_iter()
            .filter_map(|(name, value)| text(&name).map(|name| (name, value)))
            .collect()),
        Value::Array(items) => {
            let mut pairs = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let (Some(name), Some(value)) = (items.next(), items.next()) {
                if let Some(name) = text(&name) {
                    pairs.push((name, value));
                }
            }
            Ok(pairs)
        }
        other => Err(Error::Reply(format!("expected a map, got {other:?}"))),
    }
}

fn field<'a>(fields: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    fields
        .iter()
        .find(|(field, _)| field == name)
        .map(|(_, value)| value)
}

fn field_text(fields: &[(String, Value)], name: &str) -> Result<String, Error> {
    field(fields, name)
        .and_then(text)
        .ok_or_else(|| Error::Reply(format!("no `{name}` in XINFO reply")))
}

/// A number field; `None` when absent or nil (as `lag` is when unknown).
fn field_number(fields: &[(String, Value)], name: &str) -> Result<Option<u64>, Error> {
    match field(fields, name) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Int(number)) => Ok(Some(u64::try_from(*number).unwrap_or(0))),
        Some(other) => text(other)
            .and_then(|text| text.parse().ok())
            .map(Some)
            .ok_or_else(|| Error::Reply(format!("`{name}` is not a number: {other:?}"))),
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => Some(text.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Escapes the characters SCAN's MATCH treats as a pattern.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_groups_from_resp2_flat_arrays() {
        let reply = Value::Array(vec![
            Value::BulkString(b"name".to_vec()),
            Value::BulkString(b"area-workers".to_vec()),
            Value::BulkString(b"pending".to_vec()),
            Value::Int(3),
            Value::BulkString(b"last-delivered-id".to_vec()),
            Value::BulkString(b"5-0".to_vec()),
            Value::BulkString(b"lag".to_vec()),
            Value::Nil,
        ]);
        let group = parse_group(reply).unwrap();
        assert_eq!(group.name, "area-workers");
        assert_eq!(group.pending, 3);
        assert_eq!(group.lag, None, "nil lag means Redis cannot tell");
        assert_eq!(group.last_delivered_id, "5-0");
    }

    #[test]
    fn oldest_pending_age_comes_from_the_smallest_id() {
        let reply = Value::Array(vec![
            Value::Int(2),
            Value::BulkString(b"1000-0".to_vec()),
            Value::BulkString(b"1500-1".to_vec()),
            Value::Array(Vec::new()),
        ]);
        assert_eq!(oldest_pending_age(&reply, 4000).unwrap(), Some(3000));
        let empty = Value::Array(vec![Value::Int(0), Value::Nil, Value::Nil, Value::Nil]);
        assert_eq!(oldest_pending_age(&empty, 4000).unwrap(), None);
    }

    #[test]
    fn escapes_glob_characters_of_the_prefix() {
        assert_eq!(glob_escape("a*b?[c]\\:"), "a\\*b\\?\\[c\\]\\\\:");
    }
}
