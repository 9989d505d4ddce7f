//! The change log (`{ns}:log`, a capped Redis Stream): entries as kvmesh
//! reads them, at stream ids `<version>-<n>` (a txn's changes share one
//! version), so that versions and ids order the same way.

use bytes::Bytes;
use redis::Value;
use redis::streams::StreamId;

use crate::{KvEvent, KvPair};

/// A place in the log: (version, n). Every entry up to it was delivered.
pub(super) type Position = (u64, u64);

/// The place after every entry of `version`.
pub(super) fn after_version(version: u64) -> Position {
    (version, u64::MAX)
}

/// The stream id of a position, for XREAD and XRANGE.
pub(super) fn stream_id(position: Position) -> String {
    format!("{}-{}", position.0, position.1)
}

/// One change.
#[derive(Debug, Clone)]
pub(super) struct LogEntry {
    pub(super) position: Position,
    pub(super) key: String,
    /// `None` for a delete.
    pub(super) value: Option<Bytes>,
}

impl LogEntry {
    /// The entry of a stream reply; `None` for one kvmesh did not write.
    pub(super) fn parse(entry: &StreamId) -> Option<LogEntry> {
        let (version, n) = entry.id.split_once('-')?;
        let position = (version.parse().ok()?, n.parse().ok()?);
        let bytes = |name: &str| match entry.map.get(name) {
            Some(Value::BulkString(b)) => Some(b.clone()),
            Some(Value::SimpleString(s)) => Some(s.clone().into_bytes()),
            _ => None,
        };
        let key = String::from_utf8(bytes("k")?).ok()?;
        let value = match bytes("op")?.as_slice() {
            b"put" => Some(Bytes::from(bytes("v")?)),
            b"del" => None,
            _ => return None,
        };
        Some(LogEntry {
            position,
            key,
            value,
        })
    }

    pub(super) fn into_event(self) -> KvEvent {
        let version = self.position.0;
        match self.value {
            Some(value) => KvEvent::Put(KvPair {
                key: self.key,
                value,
                version,
            }),
            None => KvEvent::Delete {
                key: self.key,
                version,
            },
        }
    }
}

/// True when `next` follows `last` with nothing missing between them:
/// versions are consecutive, each version's entries numbered from 0.
pub(super) fn follows(last: Position, next: Position) -> bool {
    if next.0 == last.0 {
        return last.1 != u64::MAX && next.1 == last.1 + 1;
    }
    next.0 == last.0 + 1 && next.1 == 0
}
