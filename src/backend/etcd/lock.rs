//! Locks on etcd: one lease per lock, and etcd's own mutex protocol
//! ([`mutex`]) on `<key>___lock/`, so `etcdctl lock <key>___lock`, Go's
//! `concurrency.Mutex` on that prefix and valkeyrie's lock exclude a
//! kvmesh holder and are excluded by it. Once first, the holder writes its
//! value to `<key>` under the same lease.
//!
//! The lease has the configured lock TTL and is kept alive by one
//! keep-alive every TTL/3 (over gRPC on the store's shared keep-alive
//! stream; over the gateway one `lease/keepalive` POST, since it ignores
//! streamed keep-alives) from the moment it is granted, by the keeper shared with the
//! other backends ([`KeptLifetime`]). Revoking the lease releases the lock
//! and deletes both keys in one step; a dead holder's lease expires after
//! the TTL. The fencing token is the contender key's create revision, which
//! grows with every contender, so across holders.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Inner;
use super::mutex;
use crate::backoff::WaitThroughOutages;
use crate::lifetime::{KeptLifetime, Renewable};
use crate::watch::WatchTarget;
use crate::{Error, KvEvent, Lock, Result, WatchOptions};

/// An etcd lease as a lock's lifetime.
struct Lease {
    inner: Arc<Inner>,
    id: i64,
}

#[async_trait::async_trait]
impl Renewable for Lease {
    async fn renew(&self) -> Result<bool> {
        self.inner.client.keep_alive(self.id).await
    }

    async fn destroy(&self) -> Result<()> {
        self.inner.client.revoke_lease(self.id).await
    }
}

/// Grants a lock lease and starts keeping it alive.
async fn grant(inner: &Arc<Inner>) -> Result<(i64, KeptLifetime)> {
    let ttl = inner.config.lock_ttl;
    let sent = tokio::time::Instant::now();
    let id = inner.client.grant_lease(ttl).await?;
    let lease = Arc::new(Lease {
        inner: inner.clone(),
        id,
    });
    Ok((id, KeptLifetime::start(lease, ttl, sent)))
}

/// Contends for the lock on `key` with `lease`: enters etcd's mutex on
/// `<key>___lock/`, waits for its turn if `wait` (else gives up: `None`),
/// then writes `value` to `key` under the lease. Returns the fencing token
/// and the revision of that write.
async fn take(
    inner: &Arc<Inner>,
    kept: &KeptLifetime,
    key: &str,
    value: &Bytes,
    lease: i64,
    wait: bool,
) -> Result<Option<(u64, i64)>> {
    let prefix = mutex::prefix(key);
    let lost = || Error::LockLost {
        key: key.to_owned(),
    };
    // etcd refuses a write under a lease that ended (it expired while etcd
    // was away): this lease's try is over, not the acquire.
    let standing = match mutex::enter(inner, &prefix, lease, value).await {
        Ok(standing) => standing,
        Err(error) if lease_ended(inner, lease).await => {
            tracing::debug!(%error, "the lock lease ended before its contender key was written");
            return Err(lost());
        }
        Err(error) => return Err(error),
    };
    if !standing.holds {
        if !wait {
            return Ok(None);
        }
        let (_, lease_lost) = kept.tokens();
        tokio::select! {
            turn = mutex::wait_for_turn(inner, &prefix, standing.revision) => turn?,
            _ = lease_lost.cancelled() => return Err(lost()),
        }
        // Our contender key goes with our lease: still there, still ours.
        let (kvs, _) = inner
            .client
            .range_raw(&mutex::contender(&prefix, lease))
            .await?;
        if kvs.is_empty() {
            return Err(lost());
        }
    }
    let written = match inner.client.put_revision(key, value, lease).await {
        Ok(written) => written,
        Err(_) if lease_ended(inner, lease).await => return Err(lost()),
        Err(error) => return Err(error),
    };
    let token = u64::try_from(standing.revision)
        .map_err(|_| Error::malformed("etcd answered a negative revision"))?;
    Ok(Some((token, written)))
}

/// True when etcd says `lease` no longer exists (asked once more: a
/// failure to ask says nothing).
async fn lease_ended(inner: &Arc<Inner>, lease: i64) -> bool {
    matches!(inner.client.keep_alive(lease).await, Ok(false))
}

pub(super) async fn try_acquire(
    inner: &Arc<Inner>,
    key: &str,
    value: Bytes,
) -> Result<Option<Lock>> {
    let (lease, kept) = grant(inner).await?;
    // Dropping `kept` on the way out revokes the lease, and with it our
    // contender key.
    Ok(take(inner, &kept, key, &value, lease, false)
        .await?
        .map(|taken| hand_over(inner, kept, lease, key, taken)))
}

pub(super) async fn acquire(inner: &Arc<Inner>, key: &str, value: Bytes) -> Result<Lock> {
    let mut outage = WaitThroughOutages::new();
    loop {
        match acquire_with_one_lease(inner, key, &value, &mut outage).await {
            Err(error) => outage.again(error).await?,
            done => return done,
        }
    }
}

/// One lease's try at the lock.
async fn acquire_with_one_lease(
    inner: &Arc<Inner>,
    key: &str,
    value: &Bytes,
    outage: &mut WaitThroughOutages,
) -> Result<Lock> {
    let (lease, kept) = grant(inner).await?;
    outage.reached();
    match take(inner, &kept, key, value, lease, true).await? {
        Some(taken) => Ok(hand_over(inner, kept, lease, key, taken)),
        None => Err(Error::LockLost {
            key: key.to_owned(),
        }),
    }
}

fn hand_over(
    inner: &Arc<Inner>,
    kept: KeptLifetime,
    lease: i64,
    key: &str,
    (fencing_token, written): (u64, i64),
) -> Lock {
    let (stop, lost) = kept.tokens();
    let contender = mutex::contender(&mutex::prefix(key), lease);
    // Each from the revision it was written at: the previous holder's
    // deletion of `key` came before ours was written, and is not a loss.
    let written = u64::try_from(written).unwrap_or(fencing_token);
    for (watched, from) in [(key.to_owned(), written), (contender, fencing_token)] {
        let (stop, lost) = (stop.clone(), lost.clone());
        tokio::spawn(monitor(inner.clone(), watched, from, stop, lost));
    }
    kept.into_lock(key, lease.to_string(), fencing_token)
}

/// Declares the lock lost once `key` (its value, or its contender key) is
/// deleted.
async fn monitor(
    inner: Arc<Inner>,
    key: String,
    created: u64,
    stop: CancellationToken,
    lost: CancellationToken,
) {
    let watch =
        super::watch::open(&inner, WatchTarget::Key(key), WatchOptions::after(created)).await;
    let Ok((mut changes, _)) = watch else {
        return; // the keeper still notices a lost lease
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = lost.cancelled() => return,
            event = changes.next() => match event {
                Some(Ok(KvEvent::Delete { .. })) => {
                    tracing::info!("the etcd lock key was deleted; the lock is lost");
                    lost.cancel();
                    return;
                }
                Some(Ok(KvEvent::Put(_))) => {}
                Some(Err(error)) => {
                    tracing::warn!(%error, "the etcd lock monitor ended; the keeper still watches the lease");
                    return;
                }
                None => return,
            },
        }
    }
}

/// `Store::release`: revokes the lease (given as its decimal id), which
/// deletes the key it holds.
pub(super) async fn release_session(inner: &Arc<Inner>, session: &str) -> Result<()> {
    let unknown = || Error::UnknownSession {
        session: session.to_owned(),
    };
    let id: i64 = session.parse().map_err(|_| unknown())?;
    if id == 0 || !inner.client.keep_alive(id).await? {
        return Err(unknown());
    }
    inner.client.revoke_lease(id).await
}
