//! The `Store` trait and the plain data types it speaks in.

use std::time::Duration;

use bytes::Bytes;

use crate::{Lock, Result, Txn, TxnResult, Watch};

/// A value and the version it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvPair {
    /// The key, exactly as it was written.
    pub key: String,
    /// The value's bytes (binary-safe).
    pub value: Bytes,
    /// The store's modification index for this key: Consul `ModifyIndex`,
    /// etcd `mod_revision`, the memory store's own counter. Never 0 for a
    /// stored key; strictly increases on every write of the key.
    pub version: u64,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvEvent {
    /// The key was written; the pair is its new value and version.
    Put(KvPair),
    /// The key was deleted.
    ///
    /// `version`: the store's index at which the key was deleted; greater than
    /// the version of that key's last `Put`.
    Delete {
        /// The deleted key.
        key: String,
        /// The store's index at the deletion.
        version: u64,
    },
}

impl KvEvent {
    /// The key this event is about.
    pub fn key(&self) -> &str {
        match self {
            KvEvent::Put(pair) => &pair.key,
            KvEvent::Delete { key, .. } => key,
        }
    }

    /// The store's version at which this change happened.
    pub fn version(&self) -> u64 {
        match self {
            KvEvent::Put(pair) => pair.version,
            KvEvent::Delete { version, .. } => *version,
        }
    }
}

/// Options for [`Store::put_with`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PutOptions {
    /// Key is deleted by the store once `ttl` passes without a new write.
    pub ttl: Option<Duration>,
}

impl PutOptions {
    /// Options for a key that expires `ttl` after this write.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kvmesh::Result<()> {
    /// use std::time::Duration;
    /// use kvmesh::{Bytes, PutOptions};
    ///
    /// let store = kvmesh::connect("memory://").await?;
    /// store
    ///     .put_with("nodes/a", Bytes::from("10.0.0.1"), PutOptions::ttl(Duration::from_secs(30)))
    ///     .await?;
    /// assert!(store.exists("nodes/a").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(ttl: Duration) -> Self {
        PutOptions { ttl: Some(ttl) }
    }
}

/// Options for [`Store::watch`] and [`Store::watch_range`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct WatchOptions {
    /// None: the stream first yields the current state (a `Put` for the key,
    /// or for every key under the prefix, in key order), then every later change.
    /// Some(v): no initial state; yields only changes with version > v.
    pub after: Option<u64>,
}

impl WatchOptions {
    /// Resume a watch: yield only the changes with a version greater than
    /// `version` (typically the last version a previous watch delivered).
    pub fn after(version: u64) -> Self {
        WatchOptions {
            after: Some(version),
        }
    }
}

/// One async API over every backend.
///
/// Used as `Arc<dyn Store>`, as [`crate::connect`] and [`crate::create_store`]
/// return it; clones of that `Arc` share one store (one connection pool, one
/// watch registry). `Arc<T>`, `Box<T>` and `&T` of a store are stores too,
/// and [`crate::StoreExt`] adds helpers to all of them.
///
/// The methods, as you call them (the signatures below this list are
/// `async-trait`'s expansion of these: each returns a boxed future, so that
/// `dyn Store` works):
///
/// ```text
/// async fn put(&self, key: &str, value: Bytes) -> Result<()>;
/// async fn put_with(&self, key: &str, value: Bytes, options: PutOptions) -> Result<()>;
/// async fn get(&self, key: &str) -> Result<Option<KvPair>>;
/// async fn delete(&self, key: &str) -> Result<()>;
/// async fn exists(&self, key: &str) -> Result<bool>;
/// async fn watch(&self, key: &str, options: WatchOptions) -> Result<Watch>;
/// fn cancel_watch(&self, key: &str) -> usize;
/// async fn acquire(&self, key: &str, value: Bytes) -> Result<Lock>;
/// async fn try_acquire(&self, key: &str, value: Bytes) -> Result<Option<Lock>>;
/// async fn release(&self, session: &str) -> Result<()>;
/// async fn get_range(&self, prefix: &str) -> Result<Vec<KvPair>>;
/// async fn delete_range(&self, prefix: &str) -> Result<()>;
/// async fn watch_range(&self, prefix: &str, options: WatchOptions) -> Result<Watch>;
/// fn cancel_watch_range(&self, prefix: &str) -> usize;
/// async fn atomic_put(&self, key: &str, value: Bytes, previous: Option<u64>) -> Result<bool>;
/// async fn atomic_delete(&self, key: &str, previous: u64) -> Result<bool>;
/// async fn lock_holder(&self, key: &str) -> Result<Option<KvPair>>;
/// async fn acquire_permit(&self, key: &str, limit: u32, value: Bytes, wait: bool) -> Result<Option<Lock>>;
/// async fn permit_holders(&self, key: &str, limit: u32) -> Result<Vec<Bytes>>;
/// async fn txn(&self, txn: Txn) -> Result<TxnResult>;
/// ```
///
/// # Limits by backend
///
/// | | largest value | shortest TTL | a TTL key is gone |
/// |---|---|---|---|
/// | memory | none, or `?max_value_size=` | any above zero | exactly at its TTL |
/// | file | 1 GiB, or `?max_value_size=` below it | any above zero | exactly at its TTL, also across restarts |
/// | Redis | the server's `proto-max-bulk-len`, 512 MiB by default | 1 ms (whole milliseconds, rounded up) | for reads at its TTL; its `Delete` within about a second |
/// | Consul | the agent's `kv_max_value_size`, 512 KiB by default | the agent's `session_ttl_min`, 10 s by default | between TTL and 2 × TTL |
/// | etcd | `--max-request-bytes`, about 1.5 MiB by default | about 2 s (etcd raises shorter ones); whole seconds | at its TTL, rounded up to a second |
///
/// A value over the limit is [`crate::Error::ValueTooLarge`]; a TTL under
/// the minimum is [`crate::Error::InvalidArgument`] naming it (etcd raises it
/// silently instead).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvmesh::Result<()> {
/// use kvmesh::Bytes;
///
/// let store = kvmesh::connect("memory://").await?;
/// store.put("config/color", Bytes::from("blue")).await?;
/// let pair = store.get("config/color").await?.expect("just written");
/// assert_eq!(pair.value, "blue");
///
/// // Compare-and-swap on the version just read.
/// assert!(store.atomic_put("config/color", Bytes::from("red"), Some(pair.version)).await?);
/// assert!(!store.atomic_put("config/color", Bytes::from("green"), Some(pair.version)).await?);
/// # Ok(())
/// # }
/// ```
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Writes `value` to `key`, making the key permanent (no TTL). The
    /// largest value differs by backend: see [the limits](Store#limits-by-backend).
    async fn put(&self, key: &str, value: Bytes) -> Result<()> {
        self.put_with(key, value, PutOptions::default()).await
    }

    /// Writes `value` to `key` with options (a TTL). The shortest TTL, how
    /// late a key may outlive it and the largest value differ by backend:
    /// see [the limits](Store#limits-by-backend).
    async fn put_with(&self, key: &str, value: Bytes, options: PutOptions) -> Result<()>;

    /// Reads one key. `Ok(None)` when the key does not exist.
    async fn get(&self, key: &str) -> Result<Option<KvPair>>;

    /// Deletes one key. Deleting a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<()>;

    /// True when the key exists.
    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.get(key).await?.is_some())
    }

    /// Watches one key: see [`WatchOptions`] for what comes first. A missing
    /// key is not an error: its creation is reported when it happens.
    async fn watch(&self, key: &str, options: WatchOptions) -> Result<Watch>;

    /// Ends every watch on exactly this key; returns how many were ended.
    fn cancel_watch(&self, key: &str) -> usize;

    /// Waits until the lock on `key` is held, then writes `value` to `key`.
    /// Cancel-safe: dropping the future leaves no lock or session behind.
    /// A network lock lives on a session or lease of
    /// [`Config::lock_ttl`](crate::Config::lock_ttl), renewed every third of
    /// it; the value's size limit is the backend's, as for `put`.
    async fn acquire(&self, key: &str, value: Bytes) -> Result<Lock>;

    /// Like `acquire`, but returns `Ok(None)` at once when another holder has it.
    async fn try_acquire(&self, key: &str, value: Bytes) -> Result<Option<Lock>>;

    /// Releases the lock held under `session` (from [`Lock::session`]) and
    /// deletes its key. [`crate::Error::UnknownSession`] when no lock is held
    /// under that session.
    async fn release(&self, session: &str) -> Result<()>;

    /// Every key that starts with `prefix` (a plain string prefix), sorted by key.
    /// An empty vector when none does. The empty prefix lists every key.
    async fn get_range(&self, prefix: &str) -> Result<Vec<KvPair>>;

    /// Deletes every key that starts with `prefix`. The empty prefix is refused
    /// with [`crate::Error::InvalidKey`]: clearing a whole store by accident is
    /// too easy otherwise.
    async fn delete_range(&self, prefix: &str) -> Result<()>;

    /// Watches every key under `prefix`: see [`WatchOptions`] for what comes first.
    async fn watch_range(&self, prefix: &str, options: WatchOptions) -> Result<Watch>;

    /// Ends every watch on exactly this prefix; returns how many were ended.
    fn cancel_watch_range(&self, prefix: &str) -> usize;

    /// Compare-and-swap. `previous: None` = create only if the key is absent;
    /// `Some(v)` = write only if the key's current version is `v`.
    /// `Ok(false)` when the condition does not hold. The value's size limit
    /// is the backend's, as for `put`.
    async fn atomic_put(&self, key: &str, value: Bytes, previous: Option<u64>) -> Result<bool>;

    /// Deletes only if the key's current version is `previous`; `Ok(false)` otherwise
    /// (also when the key is missing).
    async fn atomic_delete(&self, key: &str, previous: u64) -> Result<bool>;

    /// The holder of the lock on `key`: the pair holding its value, or
    /// `None` when the lock is free. The provided method reads `key`, where
    /// every backend's holder writes its value; etcd's reads the first
    /// contender of the lock's mutex instead, so it also sees a holder that
    /// only holds the mutex (`etcdctl lock`, `etcdctl elect`).
    async fn lock_holder(&self, key: &str) -> Result<Option<KvPair>> {
        self.get(key).await
    }

    /// One permit of the counting semaphore of `limit` on `key`, held as a
    /// [`Lock`] (`wait: false`: `Ok(None)` at once when every permit is
    /// held). Use [`crate::semaphore::Semaphore`], which calls this. The
    /// provided method takes one of `limit` slot locks, `<key>/0` …; Consul's
    /// follows its own `api.Semaphore` (`consul lock -n`).
    async fn acquire_permit(
        &self,
        key: &str,
        limit: u32,
        value: Bytes,
        wait: bool,
    ) -> Result<Option<Lock>> {
        crate::semaphore::slots::acquire(self, key, limit, value, wait).await
    }

    /// The values of the holders of the semaphore of `limit` on `key`.
    async fn permit_holders(&self, key: &str, limit: u32) -> Result<Vec<Bytes>> {
        crate::semaphore::slots::holders(self, key, limit).await
    }

    /// Applies `txn` atomically: its checks, then, only if every one holds,
    /// all of its writes ([`TxnResult::Conflict`] names the keys whose check
    /// failed). Watches see its writes as ordinary `Put`/`Delete` events that
    /// share the commit's version (on Consul, its index; a Consul watch
    /// coalesces them as it coalesces any changes).
    ///
    /// Limits, checked before any request ([`crate::Error::InvalidArgument`]
    /// naming them): Consul takes 64 operations (checks and writes
    /// together), etcd 128 checks and 128 writes (its `--max-txn-ops`
    /// default), ZooKeeper 128 checks and 128 writes in one request of at
    /// most 1 MiB (its `jute.maxbuffer` default), memory and file any
    /// number. Two writes of one key are refused
    /// everywhere. The provided method, for stores written outside this
    /// crate, is [`crate::Error::Unsupported`].
    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        let _ = txn;
        Err(crate::Error::Unsupported {
            backend: "this",
            what: "transactions".into(),
        })
    }
}
