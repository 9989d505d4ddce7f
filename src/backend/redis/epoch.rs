//! The store's epoch: a random mark set once in the namespace (`{ns}:epoch`)
//! that every script checks against the one its caller knows. A server that
//! lost its data lost the mark too: the first call after it finds another
//! epoch (or none), and before anything is written the client raises the
//! version counter past every version it saw, adopts the new epoch, and has
//! every watch re-read its state and yield the difference.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a reset is told: the version counter after it.
type OnReset = Box<dyn Fn(u64) + Send + Sync>;

/// What one client knows of the store's epoch.
#[derive(Default)]
pub(super) struct Epoch {
    /// The epoch this client knows; `None` until the first call.
    current: Mutex<Option<Arc<str>>>,
    /// The highest version this client has seen: the floor the counter is
    /// raised to after a loss.
    highest_seen: AtomicU64,
    /// Told the raised counter after a reset (the store's watch hub).
    on_reset: Mutex<Option<OnReset>>,
}

impl Epoch {
    fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The epoch this client knows, if it learned one.
    pub(super) fn current(&self) -> Option<Arc<str>> {
        Self::lock(&self.current).clone()
    }

    /// Adopts `epoch` (after a raise).
    pub(super) fn adopt(&self, epoch: String) -> Arc<str> {
        let epoch: Arc<str> = epoch.into();
        *Self::lock(&self.current) = Some(epoch.clone());
        epoch
    }

    /// Records a version seen in a reply.
    pub(super) fn saw(&self, version: u64) {
        self.highest_seen.fetch_max(version, Ordering::AcqRel);
    }

    pub(super) fn highest_seen(&self) -> u64 {
        self.highest_seen.load(Ordering::Acquire)
    }

    /// Sets what is told of a reset.
    pub(super) fn on_reset(&self, callback: OnReset) {
        *Self::lock(&self.on_reset) = Some(callback);
    }

    /// Tells of a reset: the counter is now `revision`.
    pub(super) fn reset(&self, revision: u64) {
        if let Some(callback) = Self::lock(&self.on_reset).as_ref() {
            callback(revision);
        }
    }
}
