//! TTL keys on Consul, which has no key TTL: each TTL key is held by a
//! session of its own with `Behavior=delete`, so the key is deleted when the
//! session expires.
//!
//! The session's TTL is the key's TTL. Consul invalidates a session up to
//! twice its TTL after the last renewal (measured on 1.22: 2×), so a TTL key
//! disappears between `ttl` and `2 × ttl` after its last write — never
//! before `ttl`.
//!
//! Sessions never pile up: a TTL write of a key this store already tracks
//! renews its session (same TTL) or replaces it (destroying the old one); a
//! plain write or a delete of a tracked key releases and destroys its session.
//! A key moves from one session to another in one txn, so that the value is
//! written once: never again after another client's write.
//!
//! The TTL writes of one key through one store take turns ([`Turns`]): two
//! of them racing would each make a session and one would find the key
//! held by the other's. In turn, the last write wins, with its TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::OwnedMutexGuard;

use super::client::{ConsulClient, Write};
use crate::base64_bytes::encode;
use crate::{Error, Result};

/// The session holding one TTL key.
#[derive(Debug, Clone)]
struct TtlSession {
    id: String,
    ttl: Duration,
}

/// The TTL sessions this store (and its clones) created, by key.
#[derive(Debug, Default)]
pub(super) struct TtlSessions {
    by_key: Mutex<HashMap<String, TtlSession>>,
    turns: Turns,
}

/// One turn at a time per key, for the writes that change its session.
#[derive(Debug, Default)]
struct Turns {
    keys: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A key's turn; the next writer of the key goes once it is dropped.
struct Turn<'a> {
    turns: &'a Turns,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Turns {
    fn keys(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn take(&self, key: &str) -> Turn<'_> {
        let lock = self.keys().entry(key.to_owned()).or_default().clone();
        Turn {
            turns: self,
            key: key.to_owned(),
            guard: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut keys = self.turns.keys();
        // Only the map's own reference left: nobody waits for this key.
        if keys
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            keys.remove(&self.key);
        }
    }
}

/// The name of the sessions that hold TTL keys.
const TTL_SESSION: &str = "kvmesh-ttl";

/// Makes session `id` hold `key` with `value`. A key another store's TTL
/// session holds is taken over (the last TTL write wins, as on etcd and
/// Redis): handed from that session to `id` in one txn ([`hand_over`]). A
/// key a lock holds (any other session) is [`Error::HeldByLock`].
async fn take_over(client: &ConsulClient, key: &str, value: Bytes, id: &str) -> Result<()> {
    for attempt in 0..5u32 {
        if attempt > 0 {
            // Another store writing the key with a TTL at the same moment:
            // let one of the two finish its turn.
            tokio::time::sleep(Duration::from_millis(20) * attempt).await;
        }
        if client.put(key, value.clone(), Write::Acquire(id)).await? {
            return Ok(());
        }
        let (entries, _) = client.read_entries(key, false, None).await?;
        let Some(holder) = entries
            .into_iter()
            .find(|e| e.key == key)
            .and_then(|e| e.session)
        else {
            continue; // let go of meanwhile: try again
        };
        match client.session_name(&holder).await?.as_deref() {
            Some(TTL_SESSION) if hand_over(client, key, &value, &holder, id).await? => {
                return Ok(());
            }
            // It let go of the key meanwhile: again.
            Some(TTL_SESSION) => {}
            None => {} // the session ended meanwhile: try again
            Some(_) => {
                return Err(Error::HeldByLock {
                    key: key.to_owned(),
                });
            }
        }
    }
    Err(Error::HeldByLock {
        key: key.to_owned(),
    })
}

/// Moves `key` from session `from` to session `to`, writing `value`, in one
/// txn (`unlock`, then `lock`): a write between two steps would otherwise
/// be overwritten by the second. The value goes once, with `lock` (what
/// `unlock` writes is overwritten in the same txn), base64 in the txn's
/// JSON: Consul's 512 KiB txn limit takes values up to about 380 KiB.
/// False when Consul rolled it back (`from` did not hold the key, or it
/// refused either step).
async fn hand_over(
    client: &ConsulClient,
    key: &str,
    value: &Bytes,
    from: &str,
    to: &str,
) -> Result<bool> {
    let operations = serde_json::json!([
        { "KV": { "Verb": "unlock", "Key": key, "Session": from } },
        { "KV": { "Verb": "lock", "Key": key, "Value": encode(value), "Session": to } },
    ]);
    client
        .transaction(&operations)
        .await
        .map_err(|error| match error {
            Error::ValueTooLarge { limit, .. } => Error::ValueTooLarge {
                key: key.to_owned(),
                size: value.len(),
                limit,
            },
            other => other,
        })
}

impl TtlSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TtlSession>> {
        self.by_key.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, key: &str) -> Option<TtlSession> {
        self.lock().get(key).cloned()
    }

    /// Writes `value` to `key` so that it is deleted `ttl` (to `2 × ttl`)
    /// after this write unless written again.
    pub(super) async fn put(
        &self,
        client: &ConsulClient,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<()> {
        let _turn = self.turns.take(key).await;
        let previous = self.get(key);
        if let Some(session) = previous.as_ref().filter(|s| s.ttl == ttl) {
            // Same TTL: renewing restarts the clock; acquiring with the same
            // session rewrites the value (and re-attaches a key deleted meanwhile).
            if client.renew_session(&session.id).await?
                && client
                    .put(key, value.clone(), Write::Acquire(&session.id))
                    .await?
            {
                return Ok(());
            }
        }
        let id = client.create_session(TTL_SESSION, ttl, "delete").await?;
        // The new session takes the key from the old one in one txn; when
        // the old one no longer held it, from whoever does.
        let moved = match &previous {
            Some(old) => hand_over(client, key, &value, &old.id, &id).await,
            None => Ok(false),
        };
        let taken = match moved {
            Ok(true) => Ok(()),
            Ok(false) => take_over(client, key, value, &id).await,
            Err(error) => Err(error),
        };
        match taken {
            Ok(()) => {
                // The old session holds nothing now: it goes (or expires;
                // a failure here must not fail the write, which is done).
                if let Some(old) = &previous
                    && let Err(error) = client.destroy_session(&old.id).await
                {
                    tracing::debug!(%error, key, "consul: a replaced TTL session stays until its TTL");
                }
            }
            // The new session may hold the key: it stays, and deletes the
            // key at its TTL as asked (destroying it would delete a key the
            // caller cannot know was written).
            Err(error @ (Error::OutcomeUnknown { .. } | Error::Timeout { .. })) => {
                self.lock().insert(key.to_owned(), TtlSession { id, ttl });
                return Err(error);
            }
            // Not written: the new session holds nothing; the old one, if
            // any, still holds the key and is still tracked.
            Err(error) => {
                let _ = client.destroy_session(&id).await;
                return Err(error);
            }
        }
        self.lock().insert(key.to_owned(), TtlSession { id, ttl });
        Ok(())
    }

    /// A plain write of `key`: if this store made it a TTL key, its session
    /// lets go of it (writing `value`) and is destroyed, so the key is
    /// permanent again. Returns `false` when the key was not a tracked TTL key.
    pub(super) async fn make_permanent(
        &self,
        client: &ConsulClient,
        key: &str,
        value: &Bytes,
    ) -> Result<bool> {
        if self.get(key).is_none() {
            return Ok(false); // the common case: no turn to wait for
        }
        let _turn = self.turns.take(key).await;
        let Some(session) = self.get(key) else {
            return Ok(false);
        };
        // Still tracked until the release answers: a failed one is tried
        // again by the next write (a second release by it is harmless).
        let released = client
            .put(key, value.clone(), Write::Release(&session.id))
            .await?;
        self.lock().remove(key);
        // The write is done: a session left behind only expires.
        if let Err(error) = client.destroy_session(&session.id).await {
            tracing::debug!(%error, key, "consul: a released TTL session stays until its TTL");
        }
        if !released {
            // The session no longer held the key (it expired): write plainly.
            return Ok(false);
        }
        Ok(true)
    }

    /// After `key` (or every key under it, `prefix`) was deleted: destroys
    /// the sessions that held them (best effort: one left behind expires).
    pub(super) async fn forget(&self, client: &ConsulClient, key: &str, prefix: bool) {
        let sessions: Vec<TtlSession> = {
            let mut by_key = self.lock();
            if prefix {
                let keys: Vec<String> = by_key
                    .keys()
                    .filter(|k| k.starts_with(key))
                    .cloned()
                    .collect();
                keys.iter().filter_map(|k| by_key.remove(k)).collect()
            } else {
                by_key.remove(key).into_iter().collect()
            }
        };
        for session in sessions {
            // The delete is done: a session left behind only expires (it
            // holds no key now).
            if let Err(error) = client.destroy_session(&session.id).await {
                tracing::debug!(%error, key, "consul: a TTL session stays until its TTL");
            }
        }
    }
}
