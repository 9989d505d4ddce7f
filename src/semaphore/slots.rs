//! The semaphore every store has: `limit` slot locks `<key>/0` …
//! `<key>/<limit-1>`, each an ordinary [`Store::acquire`] lock, so a slot
//! lives on the store's lock lifetime (a Consul session, an etcd lease) and
//! a dead holder's slot frees when that expires.

use bytes::Bytes;
use futures::StreamExt;

use crate::backoff::WaitThroughOutages;
use crate::{Error, KvEvent, Lock, Result, Store, WatchOptions};

fn slot(key: &str, index: u32) -> String {
    format!("{key}/{index}")
}

/// The first free slot, tried from a random one so contenders spread out.
async fn take_a_slot<S: Store + ?Sized>(
    store: &S,
    key: &str,
    limit: u32,
    value: &Bytes,
) -> Result<Option<Lock>> {
    // Truncation is the point: a random index below `limit`.
    let start = (crate::backoff::random_unit() * f64::from(limit)) as u32 % limit.max(1);
    for offset in 0..limit {
        let slot = slot(key, (start + offset) % limit);
        if let Some(lock) = store.try_acquire(&slot, value.clone()).await? {
            return Ok(Some(lock));
        }
    }
    Ok(None)
}

/// A slot; with `wait`, once one is free, riding out outages as a waiting
/// lock does.
pub(crate) async fn acquire<S: Store + ?Sized>(
    store: &S,
    key: &str,
    limit: u32,
    value: Bytes,
    wait: bool,
) -> Result<Option<Lock>> {
    if !wait {
        return take_a_slot(store, key, limit, &value).await;
    }
    let mut outage = WaitThroughOutages::new();
    loop {
        match wait_for_a_slot(store, key, limit, &value, &mut outage).await {
            Err(error) => outage.again(error).await?,
            done => return done,
        }
    }
}

async fn wait_for_a_slot<S: Store + ?Sized>(
    store: &S,
    key: &str,
    limit: u32,
    value: &Bytes,
    outage: &mut WaitThroughOutages,
) -> Result<Option<Lock>> {
    // Watch first, so that a release between a full round of tries and
    // the wait is seen.
    let prefix = format!("{key}/");
    let mut changes = store.watch_range(&prefix, WatchOptions::default()).await?;
    outage.reached();
    loop {
        if let Some(lock) = take_a_slot(store, key, limit, value).await? {
            return Ok(Some(lock));
        }
        // Every slot is held: wait until one is given back.
        loop {
            match changes.next().await {
                Some(Ok(KvEvent::Delete { .. })) => break,
                Some(Ok(KvEvent::Put(_))) => {}
                Some(Err(error)) => return Err(error),
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "the watch on {prefix:?} was cancelled while waiting for a permit"
                    )));
                }
            }
        }
    }
}

/// The holders' values, by slot.
pub(crate) async fn holders<S: Store + ?Sized>(
    store: &S,
    key: &str,
    limit: u32,
) -> Result<Vec<Bytes>> {
    let prefix = format!("{key}/");
    let pairs = store.get_range(&prefix).await?;
    let is_slot = |name: &str| {
        name.strip_prefix(prefix.as_str())
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n < limit)
    };
    Ok(pairs
        .into_iter()
        .filter(|pair| is_slot(&pair.key))
        .map(|pair| pair.value)
        .collect())
}
