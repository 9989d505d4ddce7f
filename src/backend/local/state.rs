//! A local store's data, guarded by one lock in [`super::Shared`].
//!
//! Every change goes through [`State::set`], [`State::remove`] or
//! [`State::apply`] (a txn's writes, at one revision), which take the next
//! revision from one store-wide counter and hand the event to
//! [`State::emit`]: history, tombstones and watch channels are updated in one
//! place, under the same lock as the data, so a watch sees changes in exactly
//! the order they were made.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::change::{Change, Entry, Key, KeyHasher};
use super::channels::{ChangeReceiver, Channels};
use super::history::History;
use super::tombstones::Tombstones;
use crate::txn::TxnWrite;
use crate::watch::WatchTarget;
use crate::{Error, KvEvent, KvPair, Result};

/// Tombstones (deleted keys with their deletion revision) kept per history
/// slot, so that a watch resuming beyond the history can still learn of
/// deletions.
const TOMBSTONES_PER_HISTORY_SLOT: usize = 10;
const MIN_TOMBSTONES: usize = 1_000;

/// The holder of a lock: its session, its fencing token and the token
/// cancelled when it ends.
pub(super) struct Holder {
    pub(super) session: String,
    pub(super) fencing_token: u64,
    pub(super) ended: CancellationToken,
}

pub(crate) struct State {
    /// Point reads and writes go through the hash map; ranges walk the
    /// ordered index and look each key up.
    data: HashMap<Key, Entry, KeyHasher>,
    ordered: BTreeSet<Key>,
    revision: u64,

    history: History,

    tombstones: Tombstones,
    /// Changes emitted so far: orders the changes of one revision (a txn
    /// writes several), for watches that catch up mid-revision.
    seq: u64,

    expirations: BTreeSet<(Instant, Key)>,

    channels: Channels,

    pub(super) locks: HashMap<String, Holder>,
    pub(super) sessions: HashMap<String, String>,
    pub(super) next_session: u64,

    /// Where a durable store's changes also go (`None` for `memory://`).
    #[cfg(feature = "file")]
    log: Option<Box<dyn super::durable::ChangeLog>>,
}

impl State {
    pub(crate) fn new(history_limit: usize) -> Self {
        State {
            data: HashMap::default(),
            ordered: BTreeSet::new(),
            revision: 0,
            history: History::new(history_limit),
            tombstones: Tombstones::new(
                history_limit
                    .saturating_mul(TOMBSTONES_PER_HISTORY_SLOT)
                    .max(MIN_TOMBSTONES),
            ),
            seq: 0,
            expirations: BTreeSet::new(),
            channels: Channels::default(),
            locks: HashMap::new(),
            sessions: HashMap::new(),
            next_session: 0,
            #[cfg(feature = "file")]
            log: None,
        }
    }

    pub(crate) fn revision(&self) -> u64 {
        self.revision
    }

    pub(super) fn key_count(&self) -> usize {
        self.data.len()
    }

    // ----- reads -----

    pub(super) fn get(&self, key: &str) -> Option<KvPair> {
        let entry = self.data.get(key)?;
        entry.is_live(&mut None).then(|| KvPair {
            key: key.to_owned(),
            value: entry.value.clone(),
            version: entry.version,
        })
    }

    pub(super) fn version_of(&self, key: &str) -> Option<u64> {
        let entry = self.data.get(key)?;
        entry.is_live(&mut None).then_some(entry.version)
    }

    /// The keys under `prefix`, in order.
    fn keys_under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a Key> + 'a {
        self.ordered
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |key| key.starts_with(prefix))
    }

    pub(super) fn range(&self, prefix: &str) -> Vec<KvPair> {
        let mut now = None;
        self.keys_under(prefix)
            .filter_map(|key| {
                let entry = self.data.get(key)?;
                entry.is_live(&mut now).then(|| KvPair {
                    key: String::from(&**key),
                    value: entry.value.clone(),
                    version: entry.version,
                })
            })
            .collect()
    }

    /// The current state of a watch target, in key order.
    pub(super) fn snapshot(&self, target: &WatchTarget) -> Vec<KvEvent> {
        let pairs = match target {
            WatchTarget::Key(key) => self.get(key).into_iter().collect(),
            WatchTarget::Prefix(prefix) => self.range(prefix),
        };
        pairs.into_iter().map(KvEvent::Put).collect()
    }

    /// Every change to `target` after revision `after`, in revision order:
    /// replayed from the history when it reaches back that far, otherwise
    /// rebuilt from the current data and the tombstones (a `Put` per key
    /// written since, a `Delete` per key deleted since).
    pub(super) fn changes_after(&self, target: &WatchTarget, after: u64) -> Result<Vec<KvEvent>> {
        if let Some(changes) = self.history.after_version(target, after) {
            return Ok(changes);
        }
        if after < self.tombstones.floor() {
            return Err(Error::Compacted {
                requested: after,
                oldest: self.tombstones.floor(),
            });
        }
        let mut changes: Vec<KvEvent> = self
            .snapshot(target)
            .into_iter()
            .filter(|e| e.version() > after)
            .collect();
        let deleted = self.tombstones.of(target);
        changes.extend(
            deleted
                .into_iter()
                .filter(|(_, version)| **version > after)
                .map(|(key, version)| KvEvent::Delete {
                    key: String::from(&**key),
                    version: *version,
                }),
        );
        changes.sort_by_key(KvEvent::version);
        Ok(changes)
    }

    // ----- writes -----

    /// Writes `key` and returns its new version. `expires_at: None` makes the
    /// key permanent.
    pub(super) fn set(&mut self, key: &str, value: Bytes, expires_at: Option<Instant>) -> u64 {
        self.revision += 1;
        self.set_at(key, value, expires_at, self.revision);
        self.revision
    }

    /// Writes `key` at `version` (the current revision's, or the next one's).
    fn set_at(&mut self, key: &str, value: Bytes, expires_at: Option<Instant>, version: u64) {
        let shared_key = match self.data.get_mut(key) {
            Some(entry) => {
                let old_expiry = std::mem::replace(&mut entry.expires_at, expires_at);
                entry.value = value.clone();
                entry.version = version;
                let shared_key = entry.key.clone();
                if let Some(at) = old_expiry {
                    self.expirations.remove(&(at, shared_key.clone()));
                }
                shared_key
            }
            None => {
                let shared_key: Key = Arc::from(key);
                self.ordered.insert(shared_key.clone());
                let entry = Entry {
                    key: shared_key.clone(),
                    value: value.clone(),
                    version,
                    expires_at,
                };
                self.data.insert(shared_key.clone(), entry);
                shared_key
            }
        };
        if let Some(at) = expires_at {
            self.expirations.insert((at, shared_key.clone()));
        }
        self.tombstones.remove(key);
        let change = Change {
            key: shared_key,
            value: Some(value),
            version,
            seq: 0,
        };
        self.emit(change, expires_at, Vec::new());
    }

    /// Deletes `key`; returns the deletion's revision, or `None` if it was absent.
    /// A lock held on the key ends.
    pub(crate) fn remove(&mut self, key: &str) -> Option<u64> {
        let version = self.revision + 1;
        self.remove_at(key, version).then(|| {
            self.revision = version;
            version
        })
    }

    /// Deletes `key` at `version`; false (and nothing changes) if it was absent.
    fn remove_at(&mut self, key: &str, version: u64) -> bool {
        let Some((key, entry)) = self.data.remove_entry(key) else {
            return false;
        };
        self.ordered.remove(&key);
        if let Some(at) = entry.expires_at {
            self.expirations.remove(&(at, key.clone()));
        }
        if !self.locks.is_empty() {
            self.end_lock(&key);
        }
        let forgotten = self.tombstones.insert(key.clone(), version);
        let change = Change {
            key,
            value: None,
            version,
            seq: 0,
        };
        self.emit(change, None, forgotten);
        true
    }

    /// Applies a transaction's writes at one new revision (the current one
    /// when none changes anything), and returns it.
    pub(super) fn apply(&mut self, writes: &[TxnWrite]) -> u64 {
        let version = self.revision + 1;
        let mut changed = false;
        for write in writes {
            changed |= match write {
                TxnWrite::Put { key, value } => {
                    self.set_at(key, value.clone(), None, version);
                    true
                }
                TxnWrite::Delete { key } => self.remove_at(key, version),
            };
        }
        if changed {
            self.revision = version;
        }
        self.revision
    }

    /// Deletes every key under `prefix`, each at its own revision.
    pub(super) fn remove_range(&mut self, prefix: &str) {
        let keys: Vec<Key> = self.keys_under(prefix).cloned().collect();
        for key in keys {
            self.remove(&key);
        }
    }

    /// Deletes every key whose TTL has passed.
    pub(crate) fn purge_expired(&mut self, now: Instant) {
        while let Some((at, key)) = self.expirations.first() {
            if *at > now {
                break;
            }
            let key = key.clone();
            self.remove(&key);
        }
    }

    /// True when some key has a TTL (a write then checks the clock).
    pub(crate) fn has_ttl_keys(&self) -> bool {
        !self.expirations.is_empty()
    }

    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.expirations.first().map(|(at, _)| *at)
    }

    fn emit(&mut self, mut change: Change, expires_at: Option<Instant>, forgotten: Vec<Key>) {
        self.seq += 1;
        change.seq = self.seq;
        self.channels.send(&change);
        #[cfg(feature = "file")]
        let recorded = self.recorded(&change, expires_at, forgotten);
        // Only a durable copy needs them.
        #[cfg(not(feature = "file"))]
        let _ = (expires_at, forgotten);
        self.history.push(change);
        #[cfg(feature = "file")]
        self.record(recorded);
    }

    /// How many changes have been emitted: the sequence number of the last.
    pub(super) fn seq(&self) -> u64 {
        self.seq
    }

    /// Every change to `target` after sequence number `seq`, from the
    /// history; `None` when the history no longer reaches back that far.
    pub(super) fn changes_after_seq(&self, target: &WatchTarget, seq: u64) -> Option<Vec<KvEvent>> {
        self.history.after_seq(target, seq)
    }

    pub(super) fn subscribe(&mut self, target: &WatchTarget) -> ChangeReceiver {
        self.channels.subscribe(target)
    }

    /// Drops the channel of `target` once no watch listens to it any more.
    pub(super) fn unsubscribe(&mut self, target: &WatchTarget) {
        self.channels.unsubscribe(target)
    }

    #[cfg(test)]
    pub(super) fn channel_count(&self) -> usize {
        self.channels.len()
    }
}

#[cfg(feature = "file")]
mod durable;
#[cfg(test)]
mod tests;
