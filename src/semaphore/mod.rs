//! Counting semaphores on any store: up to `limit` holders of one key at
//! once, across processes.
//!
//! On memory and etcd, a semaphore on `key` with limit `n` is `n` locks,
//! the slots `<key>/0` … `<key>/<n-1>`, each an ordinary
//! [`Store::acquire`] lock (so an etcd slot lives on a lease of the lock
//! TTL, and a dead holder's slot frees when that expires). On Consul it is
//! Consul's own `api.Semaphore` on the prefix `key`: a contender key
//! `<key>/<session>` per holder and the `<key>/.lock` key listing the
//! holders, so `consul lock -n=N <key> cmd` and kvmesh share the same `N`
//! permits. A permit's value is its holder's. Everyone using a key must
//! agree on its limit (Consul refuses a different one).
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
pub(crate) mod slots;

use crate::{Error, Lock, Result, Store};

/// Up to `limit` holders at once; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Semaphore {
    store: Arc<dyn Store>,
    key: String,
    limit: u32,
}

impl Semaphore {
    /// A semaphore of `limit` permits on `key` (nothing is sent yet).
    pub fn new(store: Arc<dyn Store>, key: &str, limit: u32) -> Self {
        Semaphore {
            store,
            key: key.to_owned(),
            limit,
        }
    }

    fn check(&self) -> Result<()> {
        crate::key::check_key(&self.key)?;
        if self.limit == 0 {
            return Err(Error::InvalidArgument(
                "a semaphore needs a limit of at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Waits for a permit; `value` identifies the holder. Cancel-safe:
    /// dropping the future leaves no permit behind.
    pub async fn acquire(&self, value: Bytes) -> Result<Permit> {
        self.check()?;
        let lock = self
            .store
            .acquire_permit(&self.key, self.limit, value, true)
            .await?;
        lock.map(|lock| Permit { lock })
            .ok_or_else(|| Error::LockLost {
                key: self.key.clone(),
            })
    }

    /// A permit if one is free now, else `Ok(None)`.
    pub async fn try_acquire(&self, value: Bytes) -> Result<Option<Permit>> {
        self.check()?;
        let lock = self
            .store
            .acquire_permit(&self.key, self.limit, value, false)
            .await?;
        Ok(lock.map(|lock| Permit { lock }))
    }

    /// The current holders' values.
    pub async fn holders(&self) -> Result<Vec<Bytes>> {
        self.check()?;
        self.store.permit_holders(&self.key, self.limit).await
    }
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

    /// The key this permit holds (`<key>/<n>`; on Consul `<key>/<session>`).
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
