//! Locks on a local store.
//!
//! A lock is a [`Holder`](super::state::Holder) record next to the key. Its
//! `ended` token is both the holder's `lost()` signal and what waiters sleep
//! on: a waiter registers nothing in the store, so dropping an `acquire`
//! future leaves nothing behind.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::state::{Holder, State};
use crate::lock::LockReleaser;
use crate::txn::LockGuard;
use crate::{Error, Lock, Result};

impl State {
    /// Records `key` as locked by a new session (its fencing token set by
    /// the caller once written); returns the session and the token
    /// cancelled when the lock ends.
    pub(super) fn take_lock(&mut self, key: &str) -> (String, CancellationToken) {
        self.next_session += 1;
        let session = format!("mem-{}", self.next_session);
        let ended = CancellationToken::new();
        self.locks.insert(
            key.to_owned(),
            Holder {
                session: session.clone(),
                fencing_token: 0,
                ended: ended.clone(),
            },
        );
        self.sessions.insert(session.clone(), key.to_owned());
        (session, ended)
    }

    /// True while the lock `guard` names is held by the holder it names.
    pub(super) fn holds(&self, guard: &LockGuard) -> bool {
        self.locks.get(&guard.key).is_some_and(|holder| {
            holder.session == guard.session && holder.fencing_token == guard.fencing_token
        })
    }

    /// Ends the lock on `key`, if any: its holder learns it is lost and its
    /// waiters wake up.
    pub(super) fn end_lock(&mut self, key: &str) {
        if let Some(holder) = self.locks.remove(key) {
            self.sessions.remove(&holder.session);
            holder.ended.cancel();
        }
    }
}

/// Takes the lock on `key` if it is free; otherwise returns the token that
/// is cancelled when the current holder's lock ends.
pub(super) fn try_lock(
    shared: &Arc<Shared>,
    key: &str,
    value: Bytes,
) -> std::result::Result<Lock, CancellationToken> {
    let mut state = shared.write_purged();
    if let Some(holder) = state.locks.get(key) {
        return Err(holder.ended.clone());
    }
    // The lock is recorded before the write, whose change is journaled as
    // a lock's; the write's version is the fencing token.
    let (session, ended) = state.take_lock(key);
    let fencing_token = state.set(key, value, None);
    if let Some(holder) = state.locks.get_mut(key) {
        holder.fencing_token = fencing_token;
    }
    drop(state);
    let releaser = MemoryLockReleaser {
        shared: shared.clone(),
        session: session.clone(),
        key: key.to_owned(),
    };
    Ok(Lock::new(
        key.to_owned(),
        session,
        fencing_token,
        ended,
        Box::new(releaser),
    ))
}

/// Ends the lock held under `session` and deletes its key; returns the
/// store's revision after it.
pub(super) fn release_session(shared: &Shared, session: &str) -> Result<u64> {
    let mut state = shared.write_purged();
    let key = state
        .sessions
        .get(session)
        .cloned()
        .ok_or_else(|| Error::UnknownSession {
            session: session.to_owned(),
        })?;
    // Removing the key ends the lock (and wakes the waiters) in the same step.
    if state.remove(&key).is_none() {
        state.end_lock(&key);
    }
    Ok(state.revision())
}

struct MemoryLockReleaser {
    shared: Arc<Shared>,
    session: String,
    key: String,
}

impl MemoryLockReleaser {
    fn release_now(&self) -> Result<u64> {
        release_session(&self.shared, &self.session).map_err(|e| match e {
            Error::UnknownSession { .. } => Error::LockLost {
                key: self.key.clone(),
            },
            other => other,
        })
    }
}

impl LockReleaser for MemoryLockReleaser {
    fn release(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        let result = self.release_now();
        let shared = self.shared;
        Box::pin(async move { shared.settled(result?).await })
    }

    fn release_in_background(self: Box<Self>) {
        // In-process and quick: no task needed. A lock lost before the drop
        // has nothing left to release.
        let _ = self.release_now();
    }
}
