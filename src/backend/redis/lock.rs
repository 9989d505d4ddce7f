//! Locks on Redis: the lock's key, with an owner token and an expiry (the
//! lock TTL), renewed by the shared keeper ([`KeptLifetime`]) with a
//! compare-and-renew script. The lock is lost when a renewal finds another
//! owner (the key changed or expired) or at the keeper's local deadline. The fencing token is the version the
//! acquire wrote. A waiter waits on the change log (a watch of the key),
//! not by polling.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use super::client::Client;
use crate::lifetime::{KeptLifetime, Renewable};
use crate::{Error, Lock, Result, Watch};

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
    let token = crate::backoff::random_token();
    let ttl_ms = ttl.as_millis().max(1).to_string();
    let sent = tokio::time::Instant::now();
    let version: u64 = client
        .run_write(
            "acquire",
            &client.scripts.lock_acquire,
            &[key.as_bytes(), value, token.as_bytes(), ttl_ms.as_bytes()],
        )
        .await?;
    if version == 0 {
        return Ok(None);
    }
    client.epoch.saw(version);
    let owner = Owner {
        client: client.clone(),
        key: key.to_owned(),
        token: token.clone(),
        ttl_ms,
    };
    let kept = KeptLifetime::start(Arc::new(owner), ttl, sent);
    Ok(Some(kept.into_lock(key, session(&token, key), version)))
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

/// A held lock's owner token on its key, as the lifetime the shared keeper
/// renews: the key's expiry moves on while the token still holds it.
struct Owner {
    client: Arc<Client>,
    key: String,
    token: String,
    ttl_ms: String,
}

#[async_trait::async_trait]
impl Renewable for Owner {
    async fn renew(&self) -> Result<bool> {
        let (key, token) = (self.key.as_bytes(), self.token.as_bytes());
        let scripts = &self.client.scripts;
        let renewed: u64 = self
            .client
            .run(
                "renew",
                &scripts.lock_renew,
                &[key, token, self.ttl_ms.as_bytes()],
            )
            .await?;
        Ok(renewed == 1)
    }

    async fn destroy(&self) -> Result<()> {
        // Not held any more (taken over, expired, released): nothing to end.
        self.end().await.map(drop)
    }

    async fn end(&self) -> Result<bool> {
        release(&self.client, &self.key, &self.token).await
    }
}

/// Deletes the lock's key if `token` still holds it; false if it does not.
pub(super) async fn release(client: &Client, key: &str, token: &str) -> Result<bool> {
    let version: u64 = client
        .run_write(
            "release",
            &client.scripts.lock_release,
            &[key.as_bytes(), token.as_bytes()],
        )
        .await?;
    Ok(version != 0)
}
