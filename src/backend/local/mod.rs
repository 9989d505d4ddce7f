//! The local engine: the store the memory and file backends share
//! (state, history, tombstones, watch fan-out, TTL purge and locks).
//!
//! One `RwLock` guards the data ([`state::State`]); reads share it, writes
//! take it exclusively and publish their event under it, so watches see one
//! total order. TTL keys are deleted by one purge task that sleeps until the
//! next expiry (the shape of mini-redis `db.rs`), spawned on the first TTL
//! write so that building a store needs no runtime. A store that keeps a
//! durable copy (the file store) hands in a [`durable::ChangeLog`] with the
//! state and a [`durable::Durability`]; everything else about it lives
//! in `backend/file/`.

pub(crate) mod change;
mod channels;
pub(crate) mod durable;
mod history;
mod lock;
mod purge;
pub(crate) mod state;
mod tombstones;
mod watch;
#[cfg(feature = "file")]
mod weak;

#[cfg(feature = "file")]
pub(crate) use weak::WeakLocalStore;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use self::durable::Durability;
use self::state::State;
use crate::key::{check_delete_prefix, check_key};
use crate::txn::TxnWrite;
use crate::watch::{WatchRegistry, WatchTarget};
use crate::{
    Config, Error, KvPair, Lock, PutOptions, Result, Store, Txn, TxnResult, Watch, WatchOptions,
};

/// A local store: the memory store, or the file store with its durable
/// copy. Clones of the `Arc<dyn Store>` it is handed out as share it.
pub(crate) struct LocalStore {
    shared: Arc<Shared>,
    max_value_size: Option<usize>,
    /// `memory` or `file`, for errors and `Debug`.
    backend: &'static str,
}

pub(crate) struct Shared {
    state: RwLock<State>,
    registry: WatchRegistry,
    /// Wakes the purge task when a TTL write may have moved the next expiry,
    /// and when the store is dropped.
    purge_wake: Arc<Notify>,
    purge_started: AtomicBool,
    /// The file store's commits (`None` for `memory://`). Last, so that
    /// the state, and with it its change log, is gone before the committer
    /// is stopped.
    durable: Option<Box<dyn Durability>>,
}

impl Shared {
    /// Waits until what a call saw, everything up to `revision`, is on disk
    /// (at once for `memory://`).
    async fn settled(&self, revision: u64) -> Result<()> {
        match &self.durable {
            Some(durable) if !durable.is_durable(revision) => durable.wait(revision).await,
            _ => Ok(()),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // Every State method leaves it consistent before it can panic, so a
        // poisoned lock still guards valid data.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The write lock, with keys whose TTL has passed already deleted, so a
    /// conditional write never sees an expired key as present.
    fn write_purged(&self) -> RwLockWriteGuard<'_, State> {
        let mut state = self.write();
        if state.has_ttl_keys() {
            state.purge_expired(Instant::now());
        }
        state
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.purge_wake.notify_one();
    }
}

impl LocalStore {
    /// An empty store that keeps nothing beyond this process.
    pub(crate) fn new(config: &Config) -> Self {
        Self::with_state(config, State::new(config.history), None)
    }

    /// A store on `state` (a durable store's, read back from its copy, with
    /// its change log started), whose changes reach that copy as `durable`
    /// says.
    pub(crate) fn with_state(
        config: &Config,
        state: State,
        durable: Option<Box<dyn Durability>>,
    ) -> Self {
        let has_ttl_keys = state.has_ttl_keys();
        let has_durable = durable.is_some();
        let store = LocalStore {
            shared: Arc::new(Shared {
                state: RwLock::new(state),
                registry: WatchRegistry::default(),
                purge_wake: Arc::new(Notify::new()),
                purge_started: AtomicBool::new(false),
                durable,
            }),
            max_value_size: config.max_value_size,
            backend: if has_durable { "file" } else { "memory" },
        };
        // Reopened keys with a TTL need the purge task; it starts here if
        // a runtime is at hand, else with the first watch or TTL write.
        if has_ttl_keys && tokio::runtime::Handle::try_current().is_ok() {
            store.ensure_purge_task();
        }
        store
    }

    /// Refuses every change once a commit to disk failed: nothing is
    /// changed in memory that could never reach the disk.
    fn check_usable(&self) -> Result<()> {
        match &self.shared.durable {
            Some(durable) => durable.check(),
            None => Ok(()),
        }
    }

    /// Refuses a key, or a value over the configured limit, or any write
    /// once a commit to disk failed.
    fn check_write(&self, key: &str, value: &Bytes) -> Result<()> {
        self.check_usable()?;
        check_key(key)?;
        match self.max_value_size {
            Some(limit) if value.len() > limit => Err(Error::ValueTooLarge {
                key: key.to_owned(),
                size: value.len(),
                limit,
            }),
            _ => Ok(()),
        }
    }

    fn ensure_purge_task(&self) {
        if self.shared.purge_started.swap(true, Ordering::AcqRel) {
            self.shared.purge_wake.notify_one();
            return;
        }
        let shared = Arc::downgrade(&self.shared);
        let wake = self.shared.purge_wake.clone();
        tokio::spawn(purge::purge_expired_keys(shared, wake));
    }

    fn watch_target(&self, target: WatchTarget, options: &WatchOptions) -> Result<Watch> {
        if !self.shared.purge_started.load(Ordering::Acquire) && self.shared.read().has_ttl_keys() {
            self.ensure_purge_task();
        }
        let (events, initial) = watch::open(&self.shared, target.clone(), options)?;
        let watch = Watch::new(events, self.shared.registry.register(target));
        Ok(watch.with_initial_state(initial))
    }
}

impl fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.read();
        let mut debug = f.debug_struct(match &self.shared.durable {
            Some(_) => "FileStore",
            None => "MemoryStore",
        });
        if let Some(durable) = &self.shared.durable {
            debug.field("location", &durable.location());
        }
        debug
            .field("keys", &state.key_count())
            .field("revision", &state.revision())
            .finish()
    }
}

#[async_trait::async_trait]
impl Store for LocalStore {
    // Not the provided `put`: that would box a second future per write,
    // which is measurable on a store this fast.
    async fn put(&self, key: &str, value: Bytes) -> Result<()> {
        self.check_write(key, &value)?;
        let revision = self.shared.write_purged().set(key, value, None);
        self.shared.settled(revision).await
    }

    async fn put_with(&self, key: &str, value: Bytes, options: PutOptions) -> Result<()> {
        self.check_write(key, &value)?;
        let Some(ttl) = options.ttl else {
            let revision = self.shared.write_purged().set(key, value, None);
            return self.shared.settled(revision).await;
        };
        crate::ttl::check_ttl(ttl, crate::ttl::MAX_TTL)?;
        let expires_at = Instant::now()
            .checked_add(ttl)
            .ok_or_else(|| Error::InvalidArgument(format!("a TTL of {ttl:?} is too long")))?;
        let revision = self.shared.write_purged().set(key, value, Some(expires_at));
        self.ensure_purge_task();
        self.shared.settled(revision).await
    }

    async fn get(&self, key: &str) -> Result<Option<KvPair>> {
        check_key(key)?;
        let (pair, revision) = {
            let state = self.shared.read();
            (state.get(key), state.revision())
        };
        self.shared.settled(revision).await?;
        Ok(pair)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.check_usable()?;
        check_key(key)?;
        let revision = {
            let mut state = self.shared.write_purged();
            state.remove(key);
            state.revision()
        };
        self.shared.settled(revision).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        let (exists, revision) = {
            let state = self.shared.read();
            (state.version_of(key).is_some(), state.revision())
        };
        self.shared.settled(revision).await?;
        Ok(exists)
    }

    async fn watch(&self, key: &str, options: WatchOptions) -> Result<Watch> {
        check_key(key)?;
        self.watch_target(WatchTarget::Key(key.to_owned()), &options)
    }

    fn cancel_watch(&self, key: &str) -> usize {
        self.shared
            .registry
            .cancel(&WatchTarget::Key(key.to_owned()))
    }

    async fn acquire(&self, key: &str, value: Bytes) -> Result<Lock> {
        self.check_write(key, &value)?;
        loop {
            match lock::try_lock(&self.shared, key, value.clone()) {
                Ok(lock) => {
                    self.shared.settled(lock.fencing_token()).await?;
                    return Ok(lock);
                }
                // Nothing is registered while waiting: dropping this future
                // here leaves the store as it was.
                Err(holder_ended) => holder_ended.cancelled_owned().await,
            }
        }
    }

    async fn try_acquire(&self, key: &str, value: Bytes) -> Result<Option<Lock>> {
        self.check_write(key, &value)?;
        match lock::try_lock(&self.shared, key, value) {
            Ok(lock) => {
                self.shared.settled(lock.fencing_token()).await?;
                Ok(Some(lock))
            }
            Err(_) => {
                let revision = self.shared.read().revision();
                self.shared.settled(revision).await?;
                Ok(None)
            }
        }
    }

    async fn release(&self, session: &str) -> Result<()> {
        self.check_usable()?;
        let revision = lock::release_session(&self.shared, session)?;
        self.shared.settled(revision).await
    }

    async fn get_range(&self, prefix: &str) -> Result<Vec<KvPair>> {
        let (pairs, revision) = {
            let state = self.shared.read();
            (state.range(prefix), state.revision())
        };
        self.shared.settled(revision).await?;
        Ok(pairs)
    }

    async fn delete_range(&self, prefix: &str) -> Result<()> {
        self.check_usable()?;
        check_delete_prefix(prefix)?;
        let revision = {
            let mut state = self.shared.write_purged();
            state.remove_range(prefix);
            state.revision()
        };
        self.shared.settled(revision).await
    }

    async fn watch_range(&self, prefix: &str, options: WatchOptions) -> Result<Watch> {
        self.watch_target(WatchTarget::Prefix(prefix.to_owned()), &options)
    }

    fn cancel_watch_range(&self, prefix: &str) -> usize {
        self.shared
            .registry
            .cancel(&WatchTarget::Prefix(prefix.to_owned()))
    }

    async fn atomic_put(&self, key: &str, value: Bytes, previous: Option<u64>) -> Result<bool> {
        self.check_write(key, &value)?;
        let (written, revision) = {
            let mut state = self.shared.write_purged();
            let written = state.version_of(key) == previous;
            if written {
                state.set(key, value, None);
            }
            (written, state.revision())
        };
        self.shared.settled(revision).await?;
        Ok(written)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        // No limit of its own: the store applies any txn at once.
        txn.validate(self.backend, usize::MAX, usize::MAX)?;
        self.check_usable()?;
        for write in &txn.writes {
            if let TxnWrite::Put { key, value } = write {
                self.check_write(key, value)?;
            }
        }
        let (result, revision) = {
            let mut state = self.shared.write_purged();
            let keys = txn.failed_checks(|key| state.version_of(key), |guard| state.holds(guard));
            let result = if keys.is_empty() {
                TxnResult::Committed {
                    version: state.apply(&txn.writes),
                }
            } else {
                TxnResult::Conflict { keys }
            };
            (result, state.revision())
        };
        self.shared.settled(revision).await?;
        Ok(result)
    }

    async fn atomic_delete(&self, key: &str, previous: u64) -> Result<bool> {
        self.check_usable()?;
        check_key(key)?;
        let (deleted, revision) = {
            let mut state = self.shared.write_purged();
            let deleted = state.version_of(key) == Some(previous);
            if deleted {
                state.remove(key);
            }
            (deleted, state.revision())
        };
        self.shared.settled(revision).await?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests;
