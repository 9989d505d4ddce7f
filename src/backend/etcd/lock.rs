//! Locks on etcd: one lease per lock.
//!
//! Acquiring is a txn "the key does not exist → put it with our lease"; a
//! waiter watches the key and tries again once it is deleted (no polling).
//! The lease has the configured lock TTL and is kept alive by one
//! `lease/keepalive` POST every TTL/3 (the gateway ignores streamed
//! keepalives) from the moment it is granted, by the keeper shared with the
//! other backends ([`KeptLifetime`]). Revoking the lease releases
//! the lock and deletes the key in one step; a dead holder's lease expires
//! after the TTL. The fencing token is the key's `create_revision`, which
//! grows every time the key is created anew, so across holders.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Inner;
use super::wire::{Compare, PutRequest, RequestOp, TxnRequest, b64};
use crate::lifetime::{KeptLifetime, Renewable, WaitThroughOutages};
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
    let id = inner.client.grant_lease(ttl).await?;
    let lease = Arc::new(Lease {
        inner: inner.clone(),
        id,
    });
    Ok((id, KeptLifetime::start(lease, ttl)))
}

/// What one try at the lock found.
enum Attempt {
    /// Ours, with this fencing token.
    Acquired(u64),
    /// Held by another at this revision: wait for a delete after it.
    HeldAt(i64),
    /// Free again by the time it was read back: try again at once (waiting
    /// for a delete that already happened would wait forever).
    Free,
}

/// One try: create the key with our lease if it does not exist, then read
/// it back.
async fn attempt(inner: &Arc<Inner>, key: &str, value: &Bytes, lease: i64) -> Result<Attempt> {
    let taken = inner
        .client
        .txn(&TxnRequest {
            compare: vec![Compare::absent(b64(key))],
            success: vec![RequestOp::Put(PutRequest {
                key: b64(key),
                value: b64(value),
                lease,
                prev_kv: false,
            })],
            failure: vec![],
        })
        .await?
        .succeeded;
    let (kvs, revision) = inner.client.range_raw(key).await?;
    let Some(kv) = kvs.into_iter().next() else {
        return Ok(Attempt::Free);
    };
    if taken && kv.lease == lease {
        return Ok(Attempt::Acquired(
            u64::try_from(kv.create_revision).unwrap_or(0),
        ));
    }
    if kv.lease == lease {
        return Ok(Attempt::Free); // ours was deleted and re-created by another: re-check
    }
    Ok(Attempt::HeldAt(revision))
}

pub(super) async fn try_acquire(
    inner: &Arc<Inner>,
    key: &str,
    value: Bytes,
) -> Result<Option<Lock>> {
    let (lease, kept) = grant(inner).await?;
    loop {
        match attempt(inner, key, &value, lease).await? {
            Attempt::Acquired(token) => return Ok(Some(hand_over(inner, kept, lease, key, token))),
            Attempt::HeldAt(_) => return Ok(None),
            Attempt::Free => continue,
        }
    }
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
    loop {
        if kept.is_lost() {
            return Err(Error::LockLost {
                key: key.to_owned(),
            });
        }
        match attempt(inner, key, value, lease).await? {
            Attempt::Acquired(token) => return Ok(hand_over(inner, kept, lease, key, token)),
            Attempt::HeldAt(revision) => wait_for_delete(inner, key, revision).await?,
            Attempt::Free => {}
        }
    }
}

/// Returns once `key` is deleted after `revision` (or is already gone).
async fn wait_for_delete(inner: &Arc<Inner>, key: &str, revision: i64) -> Result<()> {
    let after = u64::try_from(revision).unwrap_or(0);
    let mut changes = super::watch::open(
        inner,
        WatchTarget::Key(key.to_owned()),
        WatchOptions::after(after),
    )
    .await?;
    while let Some(event) = changes.next().await {
        if let KvEvent::Delete { .. } = event? {
            return Ok(());
        }
    }
    Ok(())
}

fn hand_over(
    inner: &Arc<Inner>,
    kept: KeptLifetime,
    lease: i64,
    key: &str,
    fencing_token: u64,
) -> Lock {
    let (stop, lost) = kept.tokens();
    tokio::spawn(monitor(
        inner.clone(),
        key.to_owned(),
        fencing_token,
        stop,
        lost,
    ));
    kept.into_lock(key, lease.to_string(), fencing_token)
}

/// Declares the lock lost once its key is deleted (or re-created by another holder).
async fn monitor(
    inner: Arc<Inner>,
    key: String,
    created: u64,
    stop: CancellationToken,
    lost: CancellationToken,
) {
    let watch =
        super::watch::open(&inner, WatchTarget::Key(key), WatchOptions::after(created)).await;
    let Ok(mut changes) = watch else {
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
