//! The changes the file store must also write to disk, in the order they
//! were made.
//!
//! The engine's state records each change here (as its
//! [`ChangeLog`]) under its own lock, so the journal's order is the store's
//! order; a committer on its own
//! thread takes everything recorded since its last commit as one [`Batch`]
//! (group commit: the writers that arrive during one fsync share the next).

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};

use super::clock;
use crate::backend::local::change::{Change, Key};
use crate::backend::local::durable::{ChangeLog, Marks, Recorded};

/// One change, with what the data map holds beside it.
#[derive(Debug)]
pub(crate) struct Journaled {
    pub(crate) change: Change,
    /// When the key expires, in milliseconds since the Unix epoch (a put
    /// with a TTL).
    pub(crate) expires_at_ms: Option<u64>,
    /// The key is a lock's: it goes with its holder, so with this process.
    pub(crate) lock: bool,
    /// Deletions forgotten with this change, to stay within the limit.
    pub(crate) forgotten_tombstones: Vec<Key>,
}

/// What happened since the last commit.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) changes: Vec<Journaled>,
    pub(crate) marks: Marks,
}

/// The writing end, owned by the store's state.
pub(crate) struct Journal {
    batch: Arc<Mutex<Batch>>,
    doorbell: SyncSender<()>,
}

/// The committer's end: ends once the journal is dropped and drained.
#[derive(Debug)]
pub(crate) struct JournalReader {
    batch: Arc<Mutex<Batch>>,
    doorbell: Receiver<()>,
}

/// A journal and its reader.
pub(crate) fn journal() -> (Journal, JournalReader) {
    let batch = Arc::new(Mutex::new(Batch::default()));
    // One pending ring is enough: the committer takes everything at once.
    let (doorbell, rings) = sync_channel(1);
    let reader = JournalReader {
        batch: batch.clone(),
        doorbell: rings,
    };
    (Journal { batch, doorbell }, reader)
}

fn lock(batch: &Mutex<Batch>) -> MutexGuard<'_, Batch> {
    // Pushing and taking cannot leave a batch half-made.
    batch.lock().unwrap_or_else(|e| e.into_inner())
}

impl ChangeLog for Journal {
    fn record(&self, recorded: Recorded, marks: Marks) {
        let change = Journaled {
            expires_at_ms: recorded.expires_at.map(clock::to_unix_ms),
            change: recorded.change,
            lock: recorded.lock,
            forgotten_tombstones: recorded.forgotten_tombstones,
        };
        {
            let mut batch = lock(&self.batch);
            batch.changes.push(change);
            batch.marks = marks;
        }
        // Full means a ring is already pending; disconnected cannot happen
        // while the reader runs, and after it the store is gone.
        let _ = self.doorbell.try_send(());
    }
}

#[cfg(test)]
impl Journal {
    /// Records a put of `k` at `version`, for the committer's tests.
    pub(crate) fn record_test_change(&self, version: u64) {
        let change = Change {
            key: std::sync::Arc::from("k"),
            value: Some(bytes::Bytes::from_static(b"v")),
            version,
            seq: version,
        };
        let recorded = Recorded {
            change,
            expires_at: None,
            lock: false,
            forgotten_tombstones: Vec::new(),
        };
        let marks = Marks {
            revision: version,
            seq: version,
            ..Marks::default()
        };
        self.record(recorded, marks);
    }
}

impl JournalReader {
    /// Blocks until something was recorded and takes it all; `None` once
    /// the journal is gone and everything was taken.
    pub(crate) fn next_batch(&self) -> Option<Batch> {
        loop {
            let batch = std::mem::take(&mut *lock(&self.batch));
            if !batch.changes.is_empty() {
                // A ring still pending for what was just taken costs one
                // empty look, where swallowing it could miss a new change.
                return Some(batch);
            }
            if self.doorbell.recv().is_err() {
                let last = std::mem::take(&mut *lock(&self.batch));
                return (!last.changes.is_empty()).then_some(last);
            }
        }
    }
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").finish_non_exhaustive()
    }
}
