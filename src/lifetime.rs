//! The server-side lifetime a network lock hangs on (a Consul session, an
//! etcd lease): kept alive while the lock is held or awaited, ended when it
//! is given back, and a waiting `acquire` that rides out outages.

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::Result;
use crate::lock::{Lock, LockReleaser};

/// A server-side lifetime a lock hangs on: a Consul session, an etcd lease.
#[async_trait::async_trait]
pub(crate) trait Renewable: Send + Sync + 'static {
    /// Extends it; `Ok(false)` when the server no longer knows it.
    async fn renew(&self) -> Result<bool>;
    /// Ends it (and so the lock it holds).
    async fn destroy(&self) -> Result<()>;
}

/// Keeps `lease` alive every `ttl / 3` until `stop` or `lost` is cancelled,
/// then destroys it. Declares the lock `lost` when a renewal says the lease
/// is gone, or when none has succeeded for half the TTL (the store is
/// unreachable: stop claiming the lock well before the server frees it).
pub(crate) async fn keep_alive(
    lease: std::sync::Arc<dyn Renewable>,
    ttl: std::time::Duration,
    stop: CancellationToken,
    lost: CancellationToken,
) {
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = lost.cancelled() => break,
            _ = tokio::time::sleep(ttl / 3) => {}
        }
        match lease.renew().await {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::info!("the lock's session or lease is gone; the lock is lost");
                lost.cancel();
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "renewing the lock's session or lease failed");
                if last_renewed.elapsed() >= ttl / 2 {
                    tracing::warn!("no renewal for half the lock TTL; the lock is lost");
                    lost.cancel();
                }
            }
        }
    }
    lost.cancel();
    if let Err(error) = lease.destroy().await {
        tracing::warn!(%error, "could not end a lock's session or lease; it expires by itself");
    }
}

/// A lock's lifetime from the moment it exists: kept alive in the background
/// (so a long wait in `acquire` cannot let it expire), ended when dropped —
/// which makes an abandoned `acquire` future leave nothing behind — unless it
/// becomes a [`Lock`].
pub(crate) struct KeptLifetime {
    lifetime: std::sync::Arc<dyn Renewable>,
    /// Cancelled to stop the keeper, which then ends the lifetime.
    stop: CancellationToken,
    /// Cancelled when the lifetime (and so the lock) is gone.
    lost: CancellationToken,
    handed_over: bool,
}

impl KeptLifetime {
    /// Starts keeping `lifetime` alive every `ttl / 3`.
    pub(crate) fn start(lifetime: std::sync::Arc<dyn Renewable>, ttl: std::time::Duration) -> Self {
        let kept = KeptLifetime {
            lifetime,
            stop: CancellationToken::new(),
            lost: CancellationToken::new(),
            handed_over: false,
        };
        tokio::spawn(keep_alive(
            kept.lifetime.clone(),
            ttl,
            kept.stop.clone(),
            kept.lost.clone(),
        ));
        kept
    }

    /// True once the lifetime is gone.
    #[cfg_attr(not(feature = "consul"), allow(dead_code))]
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// `(stop, lost)`, for a backend task that follows the held key: it ends
    /// on `stop` and cancels `lost` when the key is deleted or taken.
    pub(crate) fn tokens(&self) -> (CancellationToken, CancellationToken) {
        (self.stop.clone(), self.lost.clone())
    }

    /// The held lock. Releasing it, or dropping it, ends the lifetime.
    pub(crate) fn into_lock(mut self, key: &str, session: String, fencing_token: u64) -> Lock {
        self.handed_over = true;
        let releaser = LifetimeReleaser {
            lifetime: self.lifetime.clone(),
            key: key.to_owned(),
            stop: self.stop.clone(),
            lost: self.lost.clone(),
        };
        Lock::new(
            key.to_owned(),
            session,
            fencing_token,
            self.lost.clone(),
            Box::new(releaser),
        )
    }
}

impl Drop for KeptLifetime {
    fn drop(&mut self) {
        if !self.handed_over {
            self.stop.cancel();
        }
    }
}

/// Releases a lock by ending its lifetime (the server deletes the key).
struct LifetimeReleaser {
    lifetime: std::sync::Arc<dyn Renewable>,
    key: String,
    stop: CancellationToken,
    lost: CancellationToken,
}

impl LockReleaser for LifetimeReleaser {
    fn release(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let was_lost = self.lost.is_cancelled();
            self.stop.cancel();
            self.lifetime.destroy().await?;
            self.lost.cancel();
            if was_lost {
                return Err(crate::Error::LockLost { key: self.key });
            }
            Ok(())
        })
    }

    fn release_in_background(self: Box<Self>) {
        // The keeper ends the lifetime when stopped.
        self.stop.cancel();
    }
}
