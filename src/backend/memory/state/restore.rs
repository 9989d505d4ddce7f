//! Reopening a durable store: its data, history and tombstones put back as
//! they were on disk, without events (they are not changes), before the
//! journal starts recording new ones.

use bytes::Bytes;
use tokio::time::Instant;

use super::State;
use crate::backend::memory::change::{Change, Entry, Key};
use crate::backend::memory::journal::{Journal, Marks};

impl State {
    /// Sets the counters; first, before anything else is put back.
    pub(crate) fn restore_marks(&mut self, marks: Marks) {
        self.revision = marks.revision;
        self.seq = marks.seq;
        self.history
            .set_compacted(marks.history_compacted, marks.history_compacted_seq);
        self.tombstones.set_floor(marks.tombstone_floor);
    }

    /// Puts back a stored key.
    pub(crate) fn restore_key(
        &mut self,
        key: &str,
        value: Bytes,
        version: u64,
        expires_at: Option<Instant>,
    ) {
        let key: Key = key.into();
        if let Some(at) = expires_at {
            self.expirations.insert((at, key.clone()));
        }
        self.ordered.insert(key.clone());
        let entry = Entry {
            key: key.clone(),
            value,
            version,
            expires_at,
        };
        self.data.insert(key, entry);
    }

    /// Puts back a change of the history, oldest first.
    pub(crate) fn restore_change(&mut self, mut change: Change) {
        // The value the key still has is shared, not held twice.
        if let Some(entry) = self.data.get(&*change.key)
            && entry.version == change.version
            && change.value.is_some()
        {
            change.value = Some(entry.value.clone());
        }
        self.history.push(change);
    }

    /// The (version, sequence number) above which the history is whole.
    pub(crate) fn history_compacted(&self) -> (u64, u64) {
        self.history.compacted()
    }

    /// Puts back a deletion; returns the deletions forgotten to stay
    /// within the limit (smaller than when they were written).
    pub(crate) fn restore_tombstone(&mut self, key: &str, version: u64) -> Vec<Key> {
        self.tombstones.insert(key.into(), version)
    }

    /// Records every change from now on in `journal`.
    pub(crate) fn start_journal(&mut self, journal: Journal) {
        self.journal = Some(journal);
    }
}
