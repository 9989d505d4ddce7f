//! The last changes of a local store, for watches that resume with
//! `WatchOptions::after` or fall behind: replayed exactly while they reach
//! back far enough.

use std::collections::VecDeque;

use super::change::Change;
use crate::KvEvent;
use crate::watch::WatchTarget;

pub(super) struct History {
    changes: VecDeque<Change>,
    limit: usize,
    /// Every change with a version above this is still here.
    compacted: u64,
    /// Every change with a sequence number above this is still here.
    compacted_seq: u64,
}

impl History {
    pub(super) fn new(limit: usize) -> Self {
        History {
            changes: VecDeque::new(),
            limit,
            compacted: 0,
            compacted_seq: 0,
        }
    }

    /// Keeps `change`, forgetting the oldest beyond the limit.
    pub(super) fn push(&mut self, change: Change) {
        if self.limit == 0 {
            self.compacted = change.version;
            self.compacted_seq = change.seq;
            return;
        }
        if self.changes.len() == self.limit
            && let Some(oldest) = self.changes.pop_front()
        {
            self.compacted = oldest.version;
            self.compacted_seq = oldest.seq;
        }
        self.changes.push_back(change);
    }

    #[cfg(feature = "file")]
    /// The (version, sequence number) above which every change is here.
    pub(super) fn compacted(&self) -> (u64, u64) {
        (self.compacted, self.compacted_seq)
    }

    #[cfg(feature = "file")]
    /// Restores the marks of a store reopened from disk, before its changes
    /// are pushed back.
    pub(super) fn set_compacted(&mut self, version: u64, seq: u64) {
        self.compacted = version;
        self.compacted_seq = seq;
    }

    /// The changes to `target` with a version above `after`, in order;
    /// `None` when some of them are forgotten.
    pub(super) fn after_version(&self, target: &WatchTarget, after: u64) -> Option<Vec<KvEvent>> {
        (after >= self.compacted).then(|| self.since(target, |c| c.version <= after))
    }

    /// The changes to `target` with a sequence number above `seq`; `None`
    /// when some of them are forgotten.
    pub(super) fn after_seq(&self, target: &WatchTarget, seq: u64) -> Option<Vec<KvEvent>> {
        (seq >= self.compacted_seq).then(|| self.since(target, |c| c.seq <= seq))
    }

    /// The changes to `target` after the (ordered) ones `before` holds for.
    fn since(&self, target: &WatchTarget, before: impl Fn(&Change) -> bool) -> Vec<KvEvent> {
        let start = self.changes.partition_point(before);
        self.changes
            .range(start..)
            .filter(|c| target.matches(&c.key))
            .map(Change::to_event)
            .collect()
    }
}
