//! A stream entry as the worker sees it.

use redis::streams::StreamId;

/// One stream entry: its id and its fields as raw bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The stream entry id, e.g. `1712345678901-0`.
    pub id: String,
    /// The fields in the order Redis returned them.
    pub fields: Vec<(String, Vec<u8>)>,
    /// How many times the group delivered it, when known (claimed entries).
    pub delivery_count: Option<u64>,
}

impl Entry {
    /// The value of `name`, if the entry has that field.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_slice())
    }

    /// Total size of the entry's fields and values in bytes.
    pub fn size(&self) -> usize {
        self.fields
            .iter()
            .map(|(field, value)| field.len() + value.len())
            .sum()
    }

    pub(crate) fn from_stream_id(stream_id: StreamId) -> Self {
        let fields = stream_id
            .map
            .into_iter()
            .map(|(field, value)| (field, value_bytes(value)))
            .collect();
        Self {
            id: stream_id.id,
            fields,
            delivery_count: None,
        }
    }
}

fn value_bytes(value: redis::Value) -> Vec<u8> {
    match value {
        redis::Value::BulkString(bytes) => bytes,
        redis::Value::SimpleString(text) => text.into_bytes(),
        redis::Value::Int(number) => number.to_string().into_bytes(),
        other => format!("{other:?}").into_bytes(),
    }
}
