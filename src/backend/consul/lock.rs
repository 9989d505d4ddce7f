//! Locks on Consul: one session per lock.
//!
//! The session has the configured lock TTL, `Behavior=delete` (so a dead
//! holder's key is deleted when its session expires, like an explicit
//! release) and no lock-delay. A *keeper* task renews it every TTL/3 from the
//! moment it exists, so a long wait in `acquire` cannot let it expire; once
//! the lock is held a *monitor* task follows the key with blocking queries.
//! The lock is lost (`Lock::lost()` resolves) when a renewal says the session
//! is gone, at the keeper's local deadline (2/3 of the TTL after the last
//! renewal that worked was sent: the store is unreachable, stop claiming the
//! lock before Consul can free it), or when the key is deleted or held by
//! another session.
//!
//! The key carries the flags of Consul's own `api.Lock`, so `consul lock`
//! (which locks `PREFIX/.lock`) and Go's `api.Lock` on the same key wait for
//! a kvmesh holder, and a key held by any session is held for kvmesh.
//!
//! Releasing destroys the session; Consul then deletes the key in the same
//! step. The session is a [`KeptLifetime`]: dropping an `acquire` future or a
//! `Lock` stops its keeper, which destroys it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::Inner;
use super::client::Write;
use crate::backoff::Backoff;
use crate::backoff::WaitThroughOutages;
use crate::lifetime::{KeptLifetime, Renewable};
use crate::{Error, Lock, Result};

/// How long a waiter's or monitor's blocking query waits.
pub(super) const LOCK_WAIT: Duration = Duration::from_secs(60);

/// A Consul session as a lock's lifetime.
struct Session {
    inner: Arc<Inner>,
    id: String,
}

#[async_trait::async_trait]
impl Renewable for Session {
    async fn renew(&self) -> Result<bool> {
        self.inner.client.renew_session(&self.id).await
    }

    async fn destroy(&self) -> Result<()> {
        self.inner.client.destroy_session(&self.id).await
    }
}

/// A new session of the lock TTL (`Behavior=delete`), kept alive from now on.
pub(super) async fn start_session(
    inner: &Arc<Inner>,
    name: &str,
) -> Result<(String, KeptLifetime)> {
    let ttl = inner.config.lock_ttl;
    let sent = tokio::time::Instant::now();
    let id = inner.client.create_session(name, ttl, "delete").await?;
    let session = Session {
        inner: inner.clone(),
        id: id.clone(),
    };
    Ok((id, KeptLifetime::start(Arc::new(session), ttl, sent)))
}

/// Follows the held key; declares the lock lost when it is deleted or taken.
pub(super) async fn monitor(
    inner: Arc<Inner>,
    key: String,
    id: String,
    stop: CancellationToken,
    lost: CancellationToken,
) {
    let mut index = 0u64;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let read = async {
            let mut slot = inner.hub.long_polls.slot().await;
            let block = (index > 0).then_some((index, LOCK_WAIT.min(inner.config.stall_timeout)));
            // Abandoned only when the lock is released or lost, which
            // changes the key and so ends the query at Consul: no parking.
            slot.run(None, inner.client.read(&key, false, block)).await
        };
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            _ = lost.cancelled() => return,
            result = read => result,
        };
        match result {
            Ok(listing) => {
                backoff.reset();
                let ours = listing.entries.first_session() == Some(id.as_str());
                if !ours {
                    tracing::info!("the consul lock key was deleted or taken; the lock is lost");
                    lost.cancel();
                    return;
                }
                index = if listing.index < index {
                    0
                } else {
                    listing.index.max(1)
                };
            }
            Err(_) => tokio::time::sleep(backoff.next_delay()).await,
        }
    }
}

/// Takes the lock on `key`, waiting for it if `wait` (through outages, once
/// Consul has answered: see [`WaitThroughOutages`]); `Ok(None)` when it is
/// held elsewhere and `!wait`.
pub(super) async fn acquire(
    inner: &Arc<Inner>,
    key: &str,
    value: Bytes,
    wait: bool,
) -> Result<Option<Lock>> {
    let mut outage = WaitThroughOutages::new();
    loop {
        match attempt(inner, key, &value, wait, &mut outage).await {
            Err(error) if wait => outage.again(error).await?,
            done => return done,
        }
    }
}

/// One session's try at the lock.
async fn attempt(
    inner: &Arc<Inner>,
    key: &str,
    value: &Bytes,
    wait: bool,
    outage: &mut WaitThroughOutages,
) -> Result<Option<Lock>> {
    let (id, kept) = start_session(inner, "kvmesh-lock").await?;
    outage.reached();
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        if kept.is_lost() {
            return Err(Error::LockLost {
                key: key.to_owned(),
            });
        }
        if inner
            .client
            .put(key, value.clone(), Write::Lock(&id))
            .await?
        {
            // The acquire write's ModifyIndex is the fencing token: Consul's
            // index grows across holders even when the key is deleted between.
            let listing = inner.client.read(key, false, None).await?;
            let ours = listing.entries.first_session() == Some(id.as_str());
            if let Some(pair) = listing.entries.into_first()?.filter(|_| ours) {
                let (stop, lost) = kept.tokens();
                tokio::spawn(monitor(
                    inner.clone(),
                    key.to_owned(),
                    id.clone(),
                    stop,
                    lost,
                ));
                return Ok(Some(kept.into_lock(key, id, pair.version)));
            }
            continue; // deleted or taken right after: try again
        }
        if !wait {
            return Ok(None);
        }
        wait_until_free(inner, key, &mut backoff).await?;
    }
}

/// Returns once `key` has no holder (after a blocking query saw it change).
async fn wait_until_free(inner: &Arc<Inner>, key: &str, backoff: &mut Backoff) -> Result<()> {
    let mut index = 0u64;
    loop {
        let listing = {
            let mut slot = inner.hub.long_polls.slot().await;
            let block = (index > 0).then_some((index, LOCK_WAIT.min(inner.config.stall_timeout)));
            // A cancelled `acquire` abandons this query mid-flight.
            slot.run(
                block.map(|(_, wait)| wait),
                inner.client.read(key, false, block),
            )
            .await?
        };
        let held = listing.entries.first_session().is_some();
        if !held {
            if index == 0 {
                // Free at once, yet our acquire just failed: another
                // client's lock-delay is running. Retry after a pause.
                tokio::time::sleep(backoff.next_delay()).await;
            }
            return Ok(());
        }
        index = if listing.index < index {
            0
        } else {
            listing.index.max(1)
        };
    }
}

/// `Store::release`: destroys the session, which deletes the key it holds.
pub(super) async fn release_session(inner: &Arc<Inner>, session: &str) -> Result<()> {
    if session.is_empty() || !inner.client.session_exists(session).await? {
        return Err(Error::UnknownSession {
            session: session.to_owned(),
        });
    }
    inner.client.destroy_session(session).await
}
