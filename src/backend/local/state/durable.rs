//! The state's side of a durable copy (the file store's): reopening puts
//! its data, history and tombstones back as the copy holds them, without
//! events (they are not changes), before the change log starts; from then
//! on every change is recorded in the log, under the state's lock.

use bytes::Bytes;
use tokio::time::Instant;

use super::State;
use crate::backend::local::change::{Change, Entry, Key};
use crate::backend::local::durable::{ChangeLog, Marks, Recorded};

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

    /// Records every change from now on in `log`.
    pub(crate) fn start_log(&mut self, log: Box<dyn ChangeLog>) {
        self.log = Some(log);
    }

    /// What the log needs of `change`, if the store has one.
    pub(super) fn recorded(
        &self,
        change: &Change,
        expires_at: Option<Instant>,
        forgotten: Vec<Key>,
    ) -> Option<Recorded> {
        self.log.is_some().then(|| Recorded {
            lock: self.locks.contains_key(&*change.key),
            expires_at,
            change: change.clone(),
            forgotten_tombstones: forgotten,
        })
    }

    /// Hands `recorded` to the log, with the counters after it.
    pub(super) fn record(&self, recorded: Option<Recorded>) {
        if let (Some(log), Some(recorded)) = (&self.log, recorded) {
            // A delete or a txn moves the revision only after its changes.
            let mut marks = self.marks();
            marks.revision = marks.revision.max(recorded.change.version);
            log.record(recorded, marks);
        }
    }

    /// The counters a durable store keeps beside its data.
    pub(crate) fn marks(&self) -> Marks {
        let (history_compacted, history_compacted_seq) = self.history.compacted();
        Marks {
            revision: self.revision,
            seq: self.seq,
            history_compacted,
            history_compacted_seq,
            tombstone_floor: self.tombstones.floor(),
        }
    }
}
