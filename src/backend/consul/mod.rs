//! The Consul backend: the `Store` contract over Consul's HTTP KV API.
//!
//! - Values are written raw (`PUT /v1/kv/<key>`), read back base64-decoded;
//!   a key's version is its `ModifyIndex`.
//! - Keys are percent-encoded; keys Consul would move or refuse are refused
//!   first ([`keys`]).
//! - CAS uses `?cas=`; `atomic_delete` uses a transaction (check-index +
//!   delete), because `DELETE ?cas=` answers `true` for a missing key.
//! - TTL keys are held by sessions ([`ttl`]); locks by sessions renewed in
//!   the background ([`lock`]); watches are blocking queries shared by every
//!   watch on the same key or prefix ([`watch`]).

mod client;
mod entries;
mod keys;
mod lock;
mod long_polls;
mod semaphore;
mod ttl;
mod txn;
mod watch;
mod wire;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};

use self::client::{ConsulClient, Write};
use self::keys::{check_key, check_prefix};
use crate::http::{ConnectionLimits, HttpClient, MAX_REQUEST_CONNECTIONS};
use crate::watch::{WatchRegistry, WatchTarget};
use crate::{
    Config, Error, KvPair, Lock, PutOptions, Result, Store, Txn, TxnResult, Watch, WatchOptions,
};

/// A Consul store; clones of the `Arc<dyn Store>` share it.
pub(crate) struct ConsulStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    client: ConsulClient,
    config: Config,
    registry: WatchRegistry,
    ttl: ttl::TtlSessions,
    hub: watch::Hub,
}

impl fmt::Debug for ConsulStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsulStore")
            .field("http", &self.inner.client.http)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl ConsulStore {
    pub(crate) fn new(endpoints: &[&str], config: Config) -> Result<Self> {
        let mut headers = Vec::new();
        if let Some(token) = &config.token {
            let mut value = HeaderValue::from_str(token).map_err(|_| {
                Error::InvalidArgument("the Consul token is not a valid header value".into())
            })?;
            value.set_sensitive(true);
            headers.push((HeaderName::from_static("x-consul-token"), value));
        }
        let limits = ConnectionLimits {
            requests: MAX_REQUEST_CONNECTIONS,
            long_lived: long_polls::MAX_LONG_POLLS,
        };
        let http = HttpClient::new(endpoints, headers, config.tls.as_ref(), limits)?;
        let client = ConsulClient::new(http, config.datacenter.clone(), config.timeout);
        Ok(ConsulStore {
            inner: Arc::new(Inner {
                client,
                config,
                registry: WatchRegistry::default(),
                ttl: ttl::TtlSessions::default(),
                hub: watch::Hub::default(),
            }),
        })
    }

    async fn get_pair(&self, key: &str) -> Result<Option<KvPair>> {
        let listing = self.inner.client.read(key, false, None).await?;
        listing.entries.into_first()
    }

    /// A write without TTL.
    #[tracing::instrument(level = "debug", skip(self, value), fields(len = value.len()))]
    async fn put_plain(&self, key: &str, value: Bytes) -> Result<()> {
        check_key(key)?;
        let client = &self.inner.client;
        if self.inner.ttl.make_permanent(client, key, &value).await? {
            return Ok(());
        }
        if !client.put(key, value, Write::Plain).await? {
            return Err(Error::malformed(format!(
                "Consul answered false to a plain write of {key:?}"
            )));
        }
        Ok(())
    }

    /// For `connect`: one request that any endpoint answers.
    #[tracing::instrument(level = "debug", skip(self))]
    pub(crate) async fn check_reachable(&self) -> Result<()> {
        self.inner.client.check_reachable().await
    }

    async fn open_watch(&self, target: WatchTarget, options: WatchOptions) -> Result<Watch> {
        let (events, initial) = watch::open(&self.inner, target.clone(), options).await?;
        let watch = Watch::new(events, self.inner.registry.register(target));
        Ok(watch.with_initial_state(initial))
    }
}

#[async_trait::async_trait]
impl Store for ConsulStore {
    #[tracing::instrument(level = "debug", skip(self, value, options), fields(len = value.len()))]
    async fn put_with(&self, key: &str, value: Bytes, options: PutOptions) -> Result<()> {
        check_key(key)?;
        match options.ttl {
            None => self.put_plain(key, value).await,
            Some(ttl) => {
                // A TTL is a session's: Consul takes at most 24 hours.
                crate::ttl::check_ttl(ttl, std::time::Duration::from_secs(24 * 3600))?;
                self.inner
                    .ttl
                    .put(&self.inner.client, key, value, ttl)
                    .await
            }
        }
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn get(&self, key: &str) -> Result<Option<KvPair>> {
        check_key(key)?;
        self.get_pair(key).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        self.inner.client.delete(key, false, None).await?;
        self.inner.ttl.forget(&self.inner.client, key, false).await;
        Ok(())
    }

    async fn watch(&self, key: &str, options: WatchOptions) -> Result<Watch> {
        check_key(key)?;
        self.open_watch(WatchTarget::Key(key.to_owned()), options)
            .await
    }

    fn cancel_watch(&self, key: &str) -> usize {
        self.inner
            .registry
            .cancel(&WatchTarget::Key(key.to_owned()))
    }

    #[tracing::instrument(level = "debug", skip(self, value))]
    async fn acquire(&self, key: &str, value: Bytes) -> Result<Lock> {
        check_key(key)?;
        lock::acquire(&self.inner, key, value, true)
            .await?
            .ok_or_else(|| Error::malformed("acquire ended without the lock"))
    }

    #[tracing::instrument(level = "debug", skip(self, value))]
    async fn try_acquire(&self, key: &str, value: Bytes) -> Result<Option<Lock>> {
        check_key(key)?;
        lock::acquire(&self.inner, key, value, false).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn release(&self, session: &str) -> Result<()> {
        lock::release_session(&self.inner, session).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn get_range(&self, prefix: &str) -> Result<Vec<KvPair>> {
        check_prefix(prefix)?;
        let listing = self.inner.client.read(prefix, true, None).await?;
        listing
            .entries
            .into_sorted_pairs(|key| key.starts_with(prefix))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete_range(&self, prefix: &str) -> Result<()> {
        crate::key::check_delete_prefix(prefix)?;
        check_prefix(prefix)?;
        self.inner.client.delete(prefix, true, None).await?;
        self.inner
            .ttl
            .forget(&self.inner.client, prefix, true)
            .await;
        Ok(())
    }

    async fn watch_range(&self, prefix: &str, options: WatchOptions) -> Result<Watch> {
        check_prefix(prefix)?;
        self.open_watch(WatchTarget::Prefix(prefix.to_owned()), options)
            .await
    }

    fn cancel_watch_range(&self, prefix: &str) -> usize {
        self.inner
            .registry
            .cancel(&WatchTarget::Prefix(prefix.to_owned()))
    }

    #[tracing::instrument(level = "debug", skip(self, value))]
    async fn atomic_put(&self, key: &str, value: Bytes, previous: Option<u64>) -> Result<bool> {
        check_key(key)?;
        let index = match previous {
            // Consul's cas=0 means "create only": version 0 never exists.
            Some(0) => return Ok(false),
            Some(version) => version,
            None => 0,
        };
        self.inner.client.put(key, value, Write::Cas(index)).await
    }

    #[tracing::instrument(level = "debug", skip(self, value))]
    async fn acquire_permit(
        &self,
        key: &str,
        limit: u32,
        value: Bytes,
        wait: bool,
    ) -> Result<Option<Lock>> {
        check_key(key)?;
        semaphore::acquire(&self.inner, key, limit, value, wait).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn permit_holders(&self, key: &str, limit: u32) -> Result<Vec<Bytes>> {
        check_key(key)?;
        semaphore::holders(&self.inner, key, limit).await
    }

    #[tracing::instrument(level = "debug", skip(self, txn), fields(ops = txn.len()))]
    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        self.apply_txn(txn).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn atomic_delete(&self, key: &str, previous: u64) -> Result<bool> {
        check_key(key)?;
        if previous == 0 {
            return Ok(false);
        }
        // `DELETE ?cas=` answers true for a missing key; check-index fails
        // the transaction when the key is missing or at another version.
        let operations = serde_json::json!([
            { "KV": { "Verb": "check-index", "Key": key, "Index": previous } },
            { "KV": { "Verb": "delete", "Key": key } },
        ]);
        self.inner.client.transaction(&operations).await
    }
}
