//! What a local store that keeps a durable copy of its data (the file
//! store's disk) is told and asked: every change, recorded under the state's
//! lock so the copy's order is the store's, and whether a revision has
//! reached the copy yet. The memory store has no copy.

use std::fmt::Debug;

use futures::future::BoxFuture;
#[cfg(feature = "file")]
use tokio::time::Instant;

#[cfg(feature = "file")]
use super::change::{Change, Key};
use crate::Result;

/// One change, with what the data map holds beside it.
#[cfg(feature = "file")]
#[derive(Debug)]
pub(crate) struct Recorded {
    pub(crate) change: Change,
    /// When the key expires (a put with a TTL).
    pub(crate) expires_at: Option<Instant>,
    /// The key is a lock's: it goes with its holder, so with this process.
    pub(crate) lock: bool,
    /// Deletions forgotten with this change, to stay within the limit.
    pub(crate) forgotten_tombstones: Vec<Key>,
}

/// The store's counters after the last change recorded.
#[cfg(feature = "file")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marks {
    pub(crate) revision: u64,
    pub(crate) seq: u64,
    /// Every change above these (version, sequence number) is in the history.
    pub(crate) history_compacted: u64,
    pub(crate) history_compacted_seq: u64,
    /// Deletions at or below this revision may have been forgotten.
    pub(crate) tombstone_floor: u64,
}

/// Takes every change, in the store's order, under the state's lock: so it
/// must only queue, never wait.
#[cfg(feature = "file")]
pub(crate) trait ChangeLog: Send + Sync + Debug {
    fn record(&self, change: Recorded, marks: Marks);
}

/// How far the copy has come. A call returns, and a change becomes visible
/// to reads and watches, only once the copy holds it.
pub(crate) trait Durability: Send + Sync + Debug {
    /// The error that stopped the copy, if one did: every later change is
    /// refused with it, so nothing changes in memory that cannot reach it.
    fn check(&self) -> Result<()>;

    /// True when every change up to `revision` is in the copy.
    fn is_durable(&self, revision: u64) -> bool;

    /// Waits until every change up to `revision` is in the copy, or it failed.
    fn wait(&self, revision: u64) -> BoxFuture<'_, Result<()>>;

    /// Where the copy lives, for `Debug`.
    fn location(&self) -> &str;
}
