//! Locks on Redis: the lock's key, with an owner token and an expiry (the
//! lock TTL), renewed at TTL/3 by a compare-and-renew script. The lock is
//! lost when a renewal finds another owner (the key changed or expired) or
//! none succeeded for half the TTL. The fencing token is the version the
//! acquire wrote. A waiter waits on the change log (a watch of the key),
//! not by polling.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::client::Client;
use crate::lock::LockReleaser;
use crate::{Error, Lock, Result, Watch};

/// A new owner token: random, so that no two holders share one.
fn new_token() -> String {
    let a = (crate::backoff::random_unit() * (1u64 << 53) as f64) as u64;
    let b = (crate::backoff::random_unit() * (1u64 << 53) as f64) as u64;
    format!("{a:014x}{b:014x}")
}

/// The session string of a lock: its token and its key.
fn session(token: &str, key: &str) -> String {
    format!("{token}/{key}")
}

/// The token and key of a session string.
pub(super) fn parse_session(session: &str) -> Option<(&str, &str)> {
    session.split_once('/').filter(|(_, key)| !key.is_empty())
}

/// One try: the lock, or `None` while another holds it.
pub(super) async fn try_lock(
    client: &Arc<Client>,
    key: &str,
    value: &Bytes,
    ttl: Duration,
) -> Result<Option<Lock>> {
    let token = new_token();
    let ttl_ms = ttl.as_millis().max(1).to_string();
    let version: u64 = client
        .run(
            "acquire",
            &client.scripts.lock_acquire,
            &[key.as_bytes(), value, token.as_bytes(), ttl_ms.as_bytes()],
        )
        .await?;
    if version == 0 {
        return Ok(None);
    }
    let lost = CancellationToken::new();
    let stop = CancellationToken::new();
    tokio::spawn(renew(
        client.clone(),
        key.to_owned(),
        token.clone(),
        ttl,
        lost.clone(),
        stop.clone(),
    ));
    let releaser = RedisLockReleaser {
        client: client.clone(),
        key: key.to_owned(),
        token: token.clone(),
        stop,
    };
    Ok(Some(Lock::new(
        key.to_owned(),
        session(&token, key),
        version,
        lost,
        Box::new(releaser),
    )))
}

/// Waits for the lock: a try, then another after each change of the key
/// (a holder's release or expiry is a `Delete` in the log), or after half
/// the TTL at the latest.
pub(super) async fn acquire(
    client: &Arc<Client>,
    watch: impl std::future::Future<Output = Result<Watch>>,
    key: &str,
    value: &Bytes,
    ttl: Duration,
) -> Result<Lock> {
    if let Some(lock) = try_lock(client, key, value, ttl).await? {
        return Ok(lock);
    }
    let mut changes = watch.await?;
    loop {
        if let Some(lock) = try_lock(client, key, value, ttl).await? {
            return Ok(lock);
        }
        match tokio::time::timeout(ttl / 2, changes.next()).await {
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) => {
                return Err(Error::LockLost {
                    key: key.to_owned(),
                });
            }
            Ok(Some(Ok(_))) | Err(_) => {}
        }
    }
}

/// Renews the lock at TTL/3 until it is released (`stop`) or lost.
async fn renew(
    client: Arc<Client>,
    key: String,
    token: String,
    ttl: Duration,
    lost: CancellationToken,
    stop: CancellationToken,
) {
    let ttl_ms = ttl.as_millis().max(1).to_string();
    let mut last_renewed = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(ttl / 3) => {}
        }
        let renewed: Result<u64> = client
            .run(
                "renew",
                &client.scripts.lock_renew,
                &[key.as_bytes(), token.as_bytes(), ttl_ms.as_bytes()],
            )
            .await;
        match renewed {
            Ok(1) => last_renewed = Instant::now(),
            Ok(_) => {
                tracing::debug!(key, "redis lock taken over or expired");
                lost.cancel();
                return;
            }
            Err(e) if last_renewed.elapsed() >= ttl / 2 => {
                tracing::debug!(key, error = %e, "redis lock not renewed for half its TTL");
                lost.cancel();
                return;
            }
            Err(e) => tracing::debug!(key, error = %e, "redis lock renewal failed; trying again"),
        }
    }
}

/// Deletes the lock's key if `token` still holds it; false if it does not.
pub(super) async fn release(client: &Client, key: &str, token: &str) -> Result<bool> {
    let version: u64 = client
        .run(
            "release",
            &client.scripts.lock_release,
            &[key.as_bytes(), token.as_bytes()],
        )
        .await?;
    Ok(version != 0)
}

struct RedisLockReleaser {
    client: Arc<Client>,
    key: String,
    token: String,
    stop: CancellationToken,
}

impl RedisLockReleaser {
    async fn release_now(self) -> Result<()> {
        self.stop.cancel();
        if release(&self.client, &self.key, &self.token).await? {
            Ok(())
        } else {
            Err(Error::LockLost { key: self.key })
        }
    }
}

impl LockReleaser for RedisLockReleaser {
    fn release(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(self.release_now())
    }

    fn release_in_background(self: Box<Self>) {
        self.stop.cancel();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                // Lost already: nothing to release; else its TTL ends it.
                let _ = self.release_now().await;
            });
        }
    }
}
