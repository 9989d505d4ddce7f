//! Semaphores on Consul, as Consul's own `api.Semaphore` keeps them (so
//! `consul lock -n=N PREFIX cmd` and kvmesh share the same `N` permits):
//! each contender holds `PREFIX/<session>` with its session, and
//! `PREFIX/.lock` lists the holders, `{"Limit": N, "Holders": {id: true}}`,
//! written by compare-and-swap. A holder whose session is gone no longer
//! counts (every contender prunes it); so releasing a permit is destroying
//! its session, which deletes its contender key.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Inner;
use super::client::{SEMAPHORE_FLAG_VALUE, Write};
use super::lock::{LOCK_WAIT, monitor, start_session};
use super::wire::KvEntry;
use crate::backoff::WaitThroughOutages;
use crate::{Error, Lock, Result};

/// The `.lock` key's value.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Holders {
    limit: u32,
    #[serde(default)]
    holders: BTreeMap<String, bool>,
}

/// The semaphore as one listing of its prefix shows it.
struct Seen {
    /// Its live holders (sessions that still hold a contender key).
    holders: Holders,
    /// The `.lock` key's index, for the compare-and-swap (0: absent).
    lock_index: u64,
}

fn lock_key(prefix: &str) -> String {
    format!("{prefix}/.lock")
}

fn seen(entries: &[KvEntry], prefix: &str, limit: u32) -> Result<Seen> {
    let lock_key = lock_key(prefix);
    let (mut holders, lock_index) = match entries.iter().find(|e| e.key == lock_key) {
        None => (
            Holders {
                limit,
                ..Holders::default()
            },
            0,
        ),
        Some(entry) => {
            if entry.flags != SEMAPHORE_FLAG_VALUE {
                return Err(Error::InvalidArgument(format!(
                    "{lock_key:?} exists and is not a semaphore's (its flags are not api.Semaphore's)"
                )));
            }
            let value = entry.value.clone().unwrap_or_default();
            let holders = match value.is_empty() {
                true => Holders {
                    limit,
                    ..Holders::default()
                },
                false => serde_json::from_slice(&value).map_err(|e| {
                    Error::undecodable(format!("{lock_key:?} is not a semaphore's holder list"), e)
                })?,
            };
            (holders, entry.modify_index)
        }
    };
    if holders.limit != limit {
        return Err(Error::InvalidArgument(format!(
            "the semaphore {prefix:?} has a limit of {}, not {limit}",
            holders.limit
        )));
    }
    let alive: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.session.as_deref())
        .collect();
    holders
        .holders
        .retain(|session, _| alive.contains(&session.as_str()));
    Ok(Seen {
        holders,
        lock_index,
    })
}

/// One listing of `prefix/`, blocking on `index` when it is not 0.
async fn list(inner: &Arc<Inner>, prefix: &str, index: u64) -> Result<(Vec<KvEntry>, u64)> {
    let listed = format!("{prefix}/");
    let mut slot = inner.hub.long_polls.slot().await;
    let block = (index > 0).then_some((index, LOCK_WAIT.min(inner.config.stall_timeout)));
    let read = inner.client.read_entries(&listed, true, block);
    slot.run(block.map(|(_, wait)| wait), read).await
}

/// A permit; with `wait`, once one is free, riding out outages as a
/// waiting lock does (each new try with a new session).
pub(super) async fn acquire(
    inner: &Arc<Inner>,
    key: &str,
    limit: u32,
    value: Bytes,
    wait: bool,
) -> Result<Option<Lock>> {
    let mut outage = WaitThroughOutages::new();
    loop {
        match attempt(inner, key, limit, &value, wait, &mut outage).await {
            Err(error) if wait => outage.again(error).await?,
            done => return done,
        }
    }
}

/// One session's try at a permit.
async fn attempt(
    inner: &Arc<Inner>,
    key: &str,
    limit: u32,
    value: &Bytes,
    wait: bool,
    outage: &mut WaitThroughOutages,
) -> Result<Option<Lock>> {
    let prefix = key.trim_end_matches('/');
    let (id, kept) = start_session(inner, "kvmesh-semaphore").await?;
    outage.reached();
    let contender = format!("{prefix}/{id}");
    if !inner
        .client
        .put(&contender, value.clone(), Write::Contend(&id))
        .await?
    {
        return Err(Error::malformed(format!(
            "Consul refused {contender:?} to the session just made for it"
        )));
    }
    let mut index = 0;
    loop {
        if kept.is_lost() {
            return Err(Error::LockLost {
                key: contender.clone(),
            });
        }
        let (entries, at) = list(inner, prefix, index).await?;
        let mut seen = seen(&entries, prefix, limit)?;
        if seen.holders.holders.len() >= limit as usize {
            if !wait {
                return Ok(None); // dropping `kept` ends the session and the contender key
            }
            index = if at < index { 0 } else { at.max(1) };
            continue;
        }
        seen.holders.holders.insert(id.clone(), true);
        let body = serde_json::to_vec(&seen.holders)
            .map_err(|e| Error::InvalidArgument(format!("cannot encode the holders: {e}")))?;
        let cas = Write::SemaphoreCas(seen.lock_index);
        if inner
            .client
            .put(&lock_key(prefix), Bytes::from(body), cas)
            .await?
        {
            let token = entries
                .iter()
                .find(|e| e.key == contender)
                .map_or(at, |e| e.modify_index);
            let (stop, lost) = kept.tokens();
            tokio::spawn(monitor(
                inner.clone(),
                contender.clone(),
                id.clone(),
                stop,
                lost,
            ));
            return Ok(Some(kept.into_lock(&contender, id, token)));
        }
        index = 0; // another contender wrote first: read again at once
    }
}

/// The values of the live holders.
pub(super) async fn holders(inner: &Arc<Inner>, key: &str, limit: u32) -> Result<Vec<Bytes>> {
    let prefix = key.trim_end_matches('/');
    let (entries, _) = list(inner, prefix, 0).await?;
    let seen = seen(&entries, prefix, limit)?;
    Ok(entries
        .into_iter()
        .filter(|e| {
            e.session
                .as_deref()
                .is_some_and(|s| seen.holders.holders.contains_key(s))
                && e.key.rsplit('/').next() == e.session.as_deref()
        })
        .map(|e| e.value.unwrap_or_default())
        .collect())
}
