//! The copy itself: every key under the prefix with its version, the
//! highest version applied, and the fan-out of what each batch changed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::{broadcast, watch};

use super::CacheEvent;
use crate::watch::{Known, difference, known_entry};
use crate::{Error, KvEvent, KvPair};

/// How many changes a `changes()` subscriber may fall behind before it is
/// told it lagged (and its stream ends).
pub(super) const CHANGES_BUFFER: usize = 4096;

/// Where the copy stands, for `wait_for`.
#[derive(Debug, Clone)]
pub(super) struct Progress {
    /// The highest store version applied.
    pub(super) version: u64,
    /// Bumped by every batch applied (a Consul index reset can apply a
    /// batch without raising `version`).
    pub(super) batches: u64,
    /// Set when the copy stopped following for good.
    pub(super) ended: Option<Error>,
}

#[derive(Default)]
struct Contents {
    pairs: BTreeMap<String, KvPair>,
    version: u64,
}

/// The copy every clone of a cache reads.
pub(super) struct Copy {
    pub(super) prefix: String,
    contents: RwLock<Contents>,
    progress: watch::Sender<Progress>,
    changes: broadcast::Sender<CacheEvent>,
    stale: AtomicBool,
}

impl Copy {
    /// A copy holding `pairs`, the prefix as of one moment.
    pub(super) fn new(prefix: String, pairs: Vec<KvPair>) -> Copy {
        let version = pairs.iter().map(|p| p.version).max().unwrap_or(0);
        let pairs = pairs.into_iter().map(|p| (p.key.clone(), p)).collect();
        let (progress, _) = watch::channel(Progress {
            version,
            batches: 0,
            ended: None,
        });
        Copy {
            prefix,
            contents: RwLock::new(Contents { pairs, version }),
            progress,
            changes: broadcast::channel(CHANGES_BUFFER).0,
            stale: AtomicBool::new(false),
        }
    }

    // A panic elsewhere cannot leave the contents half-changed (each batch
    // is applied before anything is published), so a poisoned lock is safe.
    fn read(&self) -> RwLockReadGuard<'_, Contents> {
        self.contents.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Contents> {
        self.contents.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn get(&self, key: &str) -> Option<KvPair> {
        self.read().pairs.get(key).cloned()
    }

    pub(super) fn list(&self) -> Vec<KvPair> {
        self.read().pairs.values().cloned().collect()
    }

    pub(super) fn len(&self) -> usize {
        self.read().pairs.len()
    }

    pub(super) fn version(&self) -> u64 {
        self.read().version
    }

    /// A new subscriber to the changes applied from now on.
    pub(super) fn subscribe(&self) -> broadcast::Receiver<CacheEvent> {
        // Under the read lock, so no batch is half seen: the subscriber
        // gets every batch applied after the contents it could read.
        let _contents = self.read();
        self.changes.subscribe()
    }

    pub(super) fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    pub(super) fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire)
    }

    pub(super) fn set_stale(&self, stale: bool) {
        self.stale.store(stale, Ordering::Release);
    }

    /// Applies one batch of a watch's events at once: readers see the copy
    /// before it or after it, never halfway. Keys outside the prefix are
    /// ignored.
    pub(super) fn apply(&self, events: Vec<KvEvent>) {
        let mut contents = self.write();
        for event in events {
            if !event.key().starts_with(self.prefix.as_str()) {
                continue;
            }
            contents.version = contents.version.max(event.version());
            let change = match event {
                KvEvent::Put(pair) => {
                    let previous = contents.pairs.insert(pair.key.clone(), pair.clone());
                    CacheEvent::Put { pair, previous }
                }
                KvEvent::Delete { key, version } => match contents.pairs.remove(&key) {
                    Some(previous) => CacheEvent::Delete { previous, version },
                    // Deleted before the copy had it: nothing to report.
                    None => continue,
                },
            };
            // No subscriber is not an error.
            let _ = self.changes.send(change);
        }
        let version = contents.version;
        drop(contents);
        self.progress.send_modify(|progress| {
            progress.version = version;
            progress.batches += 1;
        });
    }

    /// Applies the difference between the copy and `current`, a fresh read
    /// of the whole prefix: a `Delete` for each key gone (at a version above
    /// both its own and every version read), a `Put` for each key new or
    /// changed.
    pub(super) fn resync(&self, current: Vec<KvPair>) {
        let read_at = current.iter().map(|p| p.version).max().unwrap_or(0);
        let (mut known, deleted_at): (Known, u64) = {
            let contents = self.read();
            let known = contents.pairs.values().map(known_entry).collect();
            (known, read_at.max(contents.version))
        };
        // The watches' own difference, in version order.
        self.apply(difference(&mut known, &current, deleted_at));
    }

    /// The copy stops following: `wait_for` callers get `error`.
    pub(super) fn end(&self, error: Error) {
        self.progress
            .send_modify(|progress| progress.ended = Some(error));
    }
}
