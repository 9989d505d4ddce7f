//! One change of a local store, as kept in the history and sent to the
//! watch channels, and the key type the store shares between them.

use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use crate::{KvEvent, KvPair};

/// Keys are shared between the data, the ordered index, the history and the
/// watch channels: a write of an existing key allocates nothing.
pub(crate) type Key = Arc<str>;

/// A fast seeded hasher for the key indexes: point reads hash every key.
pub(crate) type KeyHasher = foldhash::fast::RandomState;

/// One change, as kept in the history and sent to watchers: cheap to clone
/// (two reference counts), turned into a [`KvEvent`] only on delivery.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) key: Key,
    /// `None` for a deletion.
    pub(crate) value: Option<Bytes>,
    pub(crate) version: u64,
    /// Its place among all changes (set by `State::emit`): the changes of
    /// one txn share a version, not a place.
    pub(crate) seq: u64,
}

impl Change {
    /// The event of this change, for a watcher.
    pub(super) fn into_event(self) -> KvEvent {
        let key = String::from(&*self.key);
        match self.value {
            Some(value) => KvEvent::Put(KvPair {
                key,
                value,
                version: self.version,
            }),
            None => KvEvent::Delete {
                key,
                version: self.version,
            },
        }
    }

    /// The event of this change, which stays in the history.
    pub(super) fn to_event(&self) -> KvEvent {
        self.clone().into_event()
    }
}

/// A stored key.
pub(super) struct Entry {
    /// The map's own key, kept here so an update needs one lookup.
    pub(super) key: Key,
    pub(super) value: Bytes,
    pub(super) version: u64,
    pub(super) expires_at: Option<Instant>,
}

impl Entry {
    /// Not past its TTL (`now` is read once, on first need).
    pub(super) fn is_live(&self, now: &mut Option<Instant>) -> bool {
        match self.expires_at {
            None => true,
            Some(at) => at > *now.get_or_insert_with(Instant::now),
        }
    }
}
