//! The server-side lifetime a network lock hangs on (a Consul session, an
//! etcd lease): kept alive while the lock is held or awaited, ended when it
//! is given back, and a waiting `acquire` that rides out outages.

use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;
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

    /// Ends it for an explicit release; `Ok(false)` when it no longer held
    /// the lock (taken over or expired meanwhile), which the release then
    /// reports as [`crate::Error::LockLost`].
    async fn end(&self) -> Result<bool> {
        self.destroy().await.map(|()| true)
    }
}

/// How much of the TTL a lock counts on after the last renewal that worked
/// was *sent*: the server, which received it later, keeps the lease at least
/// a whole TTL from then. The third left over is the margin for clock rate
/// differences and for the holder to stop acting on the lock.
pub(crate) const VALID_FRACTION: (u32, u32) = (2, 3);

/// How long a lease renewed by a request sent at `sent` is surely valid.
pub(crate) fn valid_until(sent: Instant, ttl: Duration) -> Instant {
    let (numerator, denominator) = VALID_FRACTION;
    sent + ttl * numerator / denominator
}

/// Keeps `lease` alive until `stop` or `lost` is cancelled, then destroys
/// it. A renewal is sent every `ttl / 3`, and sooner again after one fails.
///
/// The lock is declared `lost` when a renewal says the lease is gone, or at
/// a local deadline: [`valid_until`] the send time of the last renewal that
/// worked (or of the request that created the lease, `created`). The
/// deadline races the renewal in flight, so a renewal that hangs (a
/// partition that drops packets) cannot keep the holder believing it holds
/// the lock past the moment the server may free it.
pub(crate) async fn keep_alive(
    lease: std::sync::Arc<dyn Renewable>,
    ttl: Duration,
    created: Instant,
    stop: CancellationToken,
    lost: CancellationToken,
    released: CancellationToken,
) {
    let mut deadline = valid_until(created, ttl);
    let mut next = created + ttl / 3;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = lost.cancelled() => break,
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!("no lock renewal worked in time; the lock is lost");
                break;
            }
            _ = tokio::time::sleep_until(next) => {}
        }
        let sent = Instant::now();
        let renewed = tokio::select! {
            _ = stop.cancelled() => break,
            _ = lost.cancelled() => break,
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!("a lock renewal is still unanswered at the lock's deadline; the lock is lost");
                break;
            }
            renewed = lease.renew() => renewed,
        };
        match renewed {
            Ok(true) => {
                deadline = valid_until(sent, ttl);
                next = sent + ttl / 3;
            }
            Ok(false) => {
                tracing::info!("the lock's session or lease is gone; the lock is lost");
                break;
            }
            Err(error) => {
                tracing::warn!(%error, "renewing the lock's session or lease failed; retrying");
                next = Instant::now() + (ttl / 12).max(Duration::from_millis(20));
            }
        }
    }
    lost.cancel();
    if released.is_cancelled() {
        return; // `Lock::release` ends it itself, and reports how that went
    }
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
    /// Cancelled by `Lock::release`, which ends the lifetime itself.
    released: CancellationToken,
    handed_over: bool,
}

impl KeptLifetime {
    /// Starts keeping `lifetime` alive every `ttl / 3`; `created` is when
    /// the request that created it was sent.
    pub(crate) fn start(
        lifetime: std::sync::Arc<dyn Renewable>,
        ttl: Duration,
        created: Instant,
    ) -> Self {
        let kept = KeptLifetime {
            lifetime,
            stop: CancellationToken::new(),
            lost: CancellationToken::new(),
            released: CancellationToken::new(),
            handed_over: false,
        };
        tokio::spawn(keep_alive(
            kept.lifetime.clone(),
            ttl,
            created,
            kept.stop.clone(),
            kept.lost.clone(),
            kept.released.clone(),
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
    #[cfg_attr(not(any(feature = "consul", feature = "etcd")), allow(dead_code))]
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
            released: self.released.clone(),
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
    released: CancellationToken,
}

impl LockReleaser for LifetimeReleaser {
    fn release(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let was_lost = self.lost.is_cancelled();
            self.released.cancel();
            self.stop.cancel();
            let held = self.lifetime.end().await?;
            self.lost.cancel();
            if was_lost || !held {
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
