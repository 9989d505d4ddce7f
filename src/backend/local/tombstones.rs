//! Deleted keys with their deletion revision, kept (a bounded number) so
//! that a watch resuming beyond the history still learns of deletions.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::change::Key;
use crate::watch::WatchTarget;

#[derive(Default)]
pub(super) struct Tombstones {
    by_key: BTreeMap<Key, u64>,
    /// The same, oldest first (several keys may share a revision: a txn).
    by_revision: BTreeSet<(u64, Key)>,
    limit: usize,
    /// Deletions at or below this revision may have been forgotten.
    floor: u64,
}

impl Tombstones {
    pub(super) fn new(limit: usize) -> Self {
        Tombstones {
            limit,
            ..Tombstones::default()
        }
    }

    pub(super) fn floor(&self) -> u64 {
        self.floor
    }

    /// Records `key` deleted at `version`, forgetting the oldest beyond the
    /// limit; returns the keys forgotten.
    pub(super) fn insert(&mut self, key: Key, version: u64) -> Vec<Key> {
        if let Some(old) = self.by_key.insert(key.clone(), version) {
            self.by_revision.remove(&(old, key.clone()));
        }
        self.by_revision.insert((version, key));
        let mut forgotten = Vec::new();
        while self.by_key.len() > self.limit {
            let Some((version, key)) = self.by_revision.pop_first() else {
                break;
            };
            self.by_key.remove(&key);
            // Never lower: a reopen puts tombstones back in key order, so
            // the one forgotten last need not be the newest forgotten.
            self.floor = self.floor.max(version);
            forgotten.push(key);
        }
        forgotten
    }

    #[cfg(feature = "file")]
    /// Restores the floor of a store reopened from disk.
    pub(super) fn set_floor(&mut self, floor: u64) {
        self.floor = floor;
    }

    /// Forgets `key`'s deletion: it exists again.
    pub(super) fn remove(&mut self, key: &str) {
        if self.by_key.is_empty() {
            return;
        }
        if let Some((key, old)) = self.by_key.remove_entry(key) {
            self.by_revision.remove(&(old, key));
        }
    }

    /// The deletions that concern `target`.
    pub(super) fn of(&self, target: &WatchTarget) -> Vec<(&Key, &u64)> {
        match target {
            WatchTarget::Key(key) => self
                .by_key
                .get_key_value(key.as_str())
                .into_iter()
                .collect(),
            WatchTarget::Prefix(prefix) => self
                .by_key
                .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
                .take_while(|(key, _)| key.starts_with(prefix.as_str()))
                .collect(),
        }
    }
}
