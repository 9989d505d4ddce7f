//! Counting semaphores on any store: up to `limit` holders of one key at
//! once, across processes.
//!
//! A semaphore on `key` with limit `n` is `n` locks, the slots
//! `<key>/0` … `<key>/<n-1>`, each an ordinary [`Store::acquire`] lock (so
//! a slot lives on a Consul session or an etcd lease of the lock TTL, and a
//! dead holder's slot frees when that expires). A permit is one held slot;
//! its value is the holder's. Everyone using a key must agree on its limit.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> kvmesh::Result<()> {
//! use kvmesh::Bytes;
//! use kvmesh::semaphore::Semaphore;
//!
//! let store = kvmesh::connect("memory://").await?;
//! let uploads = Semaphore::new(store, "limits/uploads", 2);
//! let a = uploads.acquire(Bytes::from("node-a")).await?;
//! let b = uploads.acquire(Bytes::from("node-b")).await?;
//! assert!(uploads.try_acquire(Bytes::from("node-c")).await?.is_none());
//! assert_eq!(uploads.holders().await?.len(), 2);
//! a.release().await?;
//! assert!(uploads.try_acquire(Bytes::from("node-c")).await?.is_some());
//! # drop(b);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;

use crate::{Error, KvEvent, Lock, Result, Store, WatchOptions};

/// Up to `limit` holders at once; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Semaphore {
    store: Arc<dyn Store>,
    /// `<key>/`: the slots' prefix.
    prefix: String,
    limit: u32,
}

impl Semaphore {
    /// A semaphore of `limit` permits on `key` (nothing is sent yet).
    pub fn new(store: Arc<dyn Store>, key: &str, limit: u32) -> Self {
        Semaphore {
            store,
            prefix: format!("{key}/"),
            limit,
        }
    }

    fn check(&self) -> Result<()> {
        crate::key::check_key(self.prefix.trim_end_matches('/'))?;
        if self.limit == 0 {
            return Err(Error::InvalidArgument(
                "a semaphore needs a limit of at least 1".into(),
            ));
        }
        Ok(())
    }

    fn slot(&self, index: u32) -> String {
        format!("{}{index}", self.prefix)
    }

    /// The first free slot, trying them from a random one so that
    /// contenders spread out.
    async fn take_a_slot(&self, value: &Bytes) -> Result<Option<Permit>> {
        let start = rand_index(self.limit);
        for offset in 0..self.limit {
            let slot = self.slot((start + offset) % self.limit);
            if let Some(lock) = self.store.try_acquire(&slot, value.clone()).await? {
                return Ok(Some(Permit { lock }));
            }
        }
        Ok(None)
    }

    /// Waits for a permit; `value` identifies the holder. Cancel-safe:
    /// dropping the future leaves no permit behind.
    pub async fn acquire(&self, value: Bytes) -> Result<Permit> {
        self.check()?;
        // Watch first, so that a release between a full round of tries
        // and the wait is seen.
        let mut changes = self
            .store
            .watch_range(&self.prefix, WatchOptions::default())
            .await?;
        loop {
            if let Some(permit) = self.take_a_slot(&value).await? {
                return Ok(permit);
            }
            // Every slot is held: wait until one is given back.
            loop {
                match changes.next().await {
                    Some(Ok(KvEvent::Delete { .. })) => break,
                    Some(Ok(KvEvent::Put(_))) => {}
                    Some(Err(error)) => return Err(error),
                    None => {
                        return Err(Error::InvalidArgument(format!(
                            "the watch on {:?} was cancelled while waiting for a permit",
                            self.prefix
                        )));
                    }
                }
            }
        }
    }

    /// A permit if one is free now, else `Ok(None)`.
    pub async fn try_acquire(&self, value: Bytes) -> Result<Option<Permit>> {
        self.check()?;
        self.take_a_slot(&value).await
    }

    /// The current holders' values, by slot.
    pub async fn holders(&self) -> Result<Vec<Bytes>> {
        self.check()?;
        let pairs = self.store.get_range(&self.prefix).await?;
        let is_slot = |key: &str| {
            key.strip_prefix(self.prefix.as_str())
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n < self.limit)
        };
        Ok(pairs
            .into_iter()
            .filter(|pair| is_slot(&pair.key))
            .map(|pair| pair.value)
            .collect())
    }
}

/// A random slot index below `limit`, without a random-number crate: the
/// hasher's per-process random keys are enough to spread contenders.
fn rand_index(limit: u32) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(u64::from(std::process::id()));
    (hasher.finish() % u64::from(limit.max(1))) as u32
}

/// One held permit. Dropping it releases it in the background.
#[must_use = "dropping a Permit releases it"]
pub struct Permit {
    lock: Lock,
}

impl Permit {
    /// Resolves when the permit is lost (its session or lease expired, its
    /// slot deleted): stop using what it guards.
    pub async fn lost(&self) {
        self.lock.lost().await
    }

    /// True once the permit is known to be lost.
    pub fn is_lost(&self) -> bool {
        self.lock.is_lost()
    }

    /// The slot this permit holds (`<key>/<n>`).
    pub fn slot(&self) -> &str {
        self.lock.key()
    }

    /// Gives the permit back; a waiter takes it.
    pub async fn release(self) -> Result<()> {
        self.lock.release().await
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").field("lock", &self.lock).finish()
    }
}
