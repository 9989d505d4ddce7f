//! What `connect` checks of a Redis server: that it answers, and that it
//! will not evict the store's keys.

use super::RedisStore;
use crate::{Error, Result};

impl RedisStore {
    /// One request, for `connect`.
    pub(crate) async fn check_reachable(&self) -> Result<()> {
        let _: String = self
            .client
            .command("connecting", &redis::cmd("PING"))
            .await?;
        self.check_eviction_policy().await
    }

    /// Refuses a server that may evict the store's keys: an evicted value,
    /// index entry or log would leave a write half-made. Only `noeviction`
    /// keeps them (the `volatile-*` policies evict the lock and TTL keys,
    /// which carry expiries). Where `CONFIG GET` is not allowed, says so in
    /// a warning and goes on.
    async fn check_eviction_policy(&self) -> Result<()> {
        let mut get = redis::cmd("CONFIG");
        get.arg("GET").arg("maxmemory-policy");
        let reply: Result<Vec<String>> = self.client.command("connecting", &get).await;
        match reply.as_deref() {
            Ok([_, policy]) if policy == "noeviction" => Ok(()),
            Ok([_, policy]) => Err(Error::Unsupported {
                backend: "redis",
                what: format!(
                    "a server whose maxmemory-policy is {policy}: it may evict the store's keys \
                     and leave writes half-made; set maxmemory-policy noeviction"
                ),
            }),
            Ok(_) | Err(Error::PermissionDenied(_) | Error::MalformedReply { .. }) => {
                tracing::warn!(
                    "cannot read the Redis server's maxmemory-policy (CONFIG GET is not allowed); \
                     unless it is noeviction, evicted keys can leave writes half-made"
                );
                Ok(())
            }
            Err(error) => Err(error.clone()),
        }
    }
}
