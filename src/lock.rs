//! The [`Lock`] handle every backend returns from `acquire`.

use std::fmt;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::Result;

/// How a backend gives a lock back. `release` is the awaited path
/// ([`Lock::release`]); `release_in_background` runs when a `Lock` is dropped
/// and must not block (spawn, or do it synchronously if it is in-process).
pub(crate) trait LockReleaser: Send + Sync + 'static {
    fn release(self: Box<Self>) -> BoxFuture<'static, Result<()>>;
    fn release_in_background(self: Box<Self>);
}

/// A held distributed lock. While held, `get(key)` returns the holder's value.
///
/// Dropping a `Lock` without [`Lock::release`] releases it in the background.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvmesh::Result<()> {
/// use kvmesh::Bytes;
///
/// let store = kvmesh::connect("memory://").await?;
/// let lock = store.acquire("locks/db-migration", Bytes::from("node-a")).await?;
/// // Another caller cannot take it now.
/// assert!(store.try_acquire("locks/db-migration", Bytes::from("node-b")).await?.is_none());
/// let token = lock.fencing_token(); // hand this to the resource you protect
/// lock.release().await?;
/// let next = store.acquire("locks/db-migration", Bytes::from("node-b")).await?;
/// assert!(next.fencing_token() > token);
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping a Lock releases it"]
pub struct Lock {
    key: String,
    session: String,
    fencing_token: u64,
    lost: CancellationToken,
    releaser: Option<Box<dyn LockReleaser>>,
}

impl Lock {
    /// Builds the handle. `lost` is cancelled by the backend when the lock is
    /// lost for any reason (including its own release).
    pub(crate) fn new(
        key: String,
        session: String,
        fencing_token: u64,
        lost: CancellationToken,
        releaser: Box<dyn LockReleaser>,
    ) -> Self {
        Lock {
            key,
            session,
            fencing_token,
            lost,
            releaser: Some(releaser),
        }
    }

    /// The same lock, its key shown without `prefix` (a [`crate::Prefixed`] view).
    pub(crate) fn strip_key_prefix(mut self, prefix: &str) -> Lock {
        if self.key.starts_with(prefix) {
            self.key.drain(..prefix.len());
        }
        self
    }

    /// The key this lock is held on.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Opaque id accepted by [`Store::release`](crate::Store::release) (Consul
    /// session id, etcd lease id, ...).
    pub fn session(&self) -> &str {
        &self.session
    }

    /// Increases every time the lock changes hands; pass it to the resource you
    /// protect so that a stale holder's writes can be refused.
    pub fn fencing_token(&self) -> u64 {
        self.fencing_token
    }

    /// Resolves when the lock is lost (session expired or destroyed, key
    /// deleted, released through [`Store::release`](crate::Store::release)).
    /// Resolves at once if it is already lost.
    pub async fn lost(&self) {
        self.lost.cancelled().await
    }

    /// True once the lock is known to be lost.
    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// Gives the lock up and deletes the key.
    pub async fn release(mut self) -> Result<()> {
        match self.releaser.take() {
            Some(releaser) => releaser.release().await,
            None => Ok(()),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Some(releaser) = self.releaser.take() {
            releaser.release_in_background();
        }
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("key", &self.key)
            .field("session", &self.session)
            .field("fencing_token", &self.fencing_token)
            .field("lost", &self.lost.is_cancelled())
            .finish()
    }
}
