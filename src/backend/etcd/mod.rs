//! The etcd backend: the `Store` contract over etcd's v3 JSON gateway
//! (HTTP/1.1 + JSON: no gRPC, no protoc).
//!
//! - A key's version is its `mod_revision`; prefixes are `[prefix, range_end)`.
//! - CAS goes through `txn` (create-only: `create_revision == 0`; swap:
//!   `mod_revision == v`), and so does `atomic_delete`.
//! - A TTL key is put with a lease of its own; the lease is revoked when the
//!   key is written again or deleted through this store, so leases do not
//!   pile up. etcd rounds TTLs to whole seconds and raises those below its
//!   minimum (about 2 s).
//! - Watches are long `POST /v3/watch` streams, shared by the watches of a
//!   key, prefix or directory ([`hub`]), that resume from the next revision
//!   ([`stream`], [`watch`]); locks are leases kept alive by one keepalive POST
//!   every TTL/3 ([`lock`]).

mod auth;
mod client;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;
mod hub;
mod keys;
mod lock;
mod plain_reply;
mod plain_request;
mod stream;
mod watch;
mod wire;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use self::client::{EtcdClient, range_of};
use self::wire::{Compare, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, b64};
use crate::http::HttpClient;
use crate::key::{check_delete_prefix, check_key};
use crate::watch::{WatchRegistry, WatchTarget};
use crate::{Config, KvPair, Lock, PutOptions, Result, Store, Watch, WatchOptions};

/// An etcd store; clones of the `Arc<dyn Store>` share it.
pub(crate) struct EtcdStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    client: EtcdClient,
    config: Config,
    registry: WatchRegistry,
    /// The shared watch streams.
    hub: hub::Hub,
    /// The lease of each TTL key this store wrote.
    ttl_leases: Mutex<HashMap<String, i64>>,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("http", &self.inner.client.http)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl EtcdStore {
    pub(crate) fn new(endpoints: &[&str], config: Config) -> Result<Self> {
        let http = HttpClient::new(endpoints, Vec::new(), config.tls.as_ref())?;
        let credentials = match (&config.username, &config.password) {
            (Some(user), password) => Some(auth::Credentials::new(
                user.clone(),
                password.clone().unwrap_or_default(),
            )),
            (None, Some(_)) => {
                return Err(crate::Error::InvalidArgument(
                    "an etcd password needs a user name".into(),
                ));
            }
            (None, None) => None,
        };
        Ok(EtcdStore {
            inner: Arc::new(Inner {
                client: EtcdClient::new(http, config.timeout, credentials),
                config,
                registry: WatchRegistry::default(),
                hub: hub::Hub::default(),
                ttl_leases: Mutex::new(HashMap::new()),
            }),
        })
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.inner
            .ttl_leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Revokes the leases of TTL keys this store wrote that `key` (or, with
    /// `prefix`, every key under it) no longer uses.
    async fn drop_leases(&self, key: &str, prefix: bool) -> Result<()> {
        let leases: Vec<i64> = {
            let mut leases = self.leases();
            if prefix {
                let keys: Vec<String> = leases
                    .keys()
                    .filter(|k| k.starts_with(key))
                    .cloned()
                    .collect();
                keys.iter().filter_map(|k| leases.remove(k)).collect()
            } else {
                leases.remove(key).into_iter().collect()
            }
        };
        for lease in leases {
            self.inner.client.revoke_lease(lease).await?;
        }
        Ok(())
    }

    async fn open_watch(&self, target: WatchTarget, options: WatchOptions) -> Result<Watch> {
        let events = watch::open(&self.inner, target.clone(), options).await?;
        Ok(Watch::new(events, self.inner.registry.register(target)))
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    #[tracing::instrument(level = "debug", skip(self, value), fields(len = value.len()))]
    async fn put(&self, key: &str, value: Bytes) -> Result<()> {
        check_key(key)?;
        self.inner.client.put(key, &value, 0).await?;
        self.drop_leases(key, false).await
    }

    #[tracing::instrument(level = "debug", skip(self, value, options), fields(len = value.len()))]
    async fn put_with(&self, key: &str, value: Bytes, options: PutOptions) -> Result<()> {
        check_key(key)?;
        let Some(ttl) = options.ttl else {
            return self.put(key, value).await;
        };
        let lease = self.inner.client.grant_lease(ttl).await?;
        if let Err(error) = self.inner.client.put(key, &value, lease).await {
            let _ = self.inner.client.revoke_lease(lease).await;
            return Err(error);
        }
        let previous = self.leases().insert(key.to_owned(), lease);
        if let Some(previous) = previous {
            self.inner.client.revoke_lease(previous).await?;
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn get(&self, key: &str) -> Result<Option<KvPair>> {
        check_key(key)?;
        let (pairs, _) = self.inner.client.range(key, false, 0).await?;
        Ok(pairs.into_iter().next())
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        self.inner.client.delete(key, false).await?;
        self.drop_leases(key, false).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.get(key).await?.is_some())
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
        lock::acquire(&self.inner, key, value).await
    }

    #[tracing::instrument(level = "debug", skip(self, value))]
    async fn try_acquire(&self, key: &str, value: Bytes) -> Result<Option<Lock>> {
        check_key(key)?;
        lock::try_acquire(&self.inner, key, value).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn release(&self, session: &str) -> Result<()> {
        lock::release_session(&self.inner, session).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn get_range(&self, prefix: &str) -> Result<Vec<KvPair>> {
        let (pairs, _) = self.inner.client.range(prefix, true, 0).await?;
        Ok(pairs)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete_range(&self, prefix: &str) -> Result<()> {
        check_delete_prefix(prefix)?;
        self.inner.client.delete(prefix, true).await?;
        self.drop_leases(prefix, true).await
    }

    async fn watch_range(&self, prefix: &str, options: WatchOptions) -> Result<Watch> {
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
        let guard = match previous {
            None => Compare::absent(b64(key)),
            Some(0) => return Ok(false),
            Some(version) => Compare::modified_at(b64(key), version),
        };
        let put = RequestOp::Put(PutRequest {
            key: b64(key),
            value: b64(&value),
            lease: 0,
        });
        let swapped = self
            .inner
            .client
            .txn(&TxnRequest {
                compare: vec![guard],
                success: vec![put],
                failure: vec![],
            })
            .await?;
        if swapped {
            self.drop_leases(key, false).await?;
        }
        Ok(swapped)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn atomic_delete(&self, key: &str, previous: u64) -> Result<bool> {
        check_key(key)?;
        if previous == 0 {
            return Ok(false);
        }
        let (range_key, range_end) = range_of(key, false);
        let deleted = self
            .inner
            .client
            .txn(&TxnRequest {
                compare: vec![Compare::modified_at(b64(key), previous)],
                success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                    key: range_key,
                    range_end,
                })],
                failure: vec![],
            })
            .await?;
        if deleted {
            self.drop_leases(key, false).await?;
        }
        Ok(deleted)
    }
}
