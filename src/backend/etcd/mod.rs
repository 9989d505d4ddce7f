//! The etcd backend: the `Store` contract over etcd's v3 API, through a
//! [`transport::Transport`]: etcd's gRPC API over HTTP/2 (`grpc`, the
//! default with the `grpc` feature) or its v3 JSON gateway over HTTP/1.1
//! ([`gateway`]); neither needs protoc.
//!
//! - A key's version is its `mod_revision`; prefixes are `[prefix, range_end)`.
//! - CAS goes through `txn` (create-only: `create_revision == 0`; swap:
//!   `mod_revision == v`), and so does `atomic_delete`.
//! - A TTL key is put with a lease of its own; the lease is revoked when
//!   etcd says a write through this store replaced or deleted that value
//!   ([`ttl`]), so leases do not pile up. etcd rounds TTLs to whole seconds
//!   and raises those below its minimum (about 2 s).
//! - Watches are shared by the watches of a key, prefix or directory
//!   ([`hub`]) and resume from the next revision ([`stream`], [`watch`]);
//!   locks are leases kept alive by one keep-alive every TTL/3 ([`lock`]).

mod auth;
mod client;
mod gateway;
#[cfg(feature = "grpc")]
mod grpc;
mod hub;
mod keys;
mod lock;
mod mutex;
mod refusal;
mod stream;
mod transport;
mod ttl;
mod txn;
mod watch;
mod wire;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use self::client::{EtcdClient, range_of};
use self::refusal::with_value_size;
use self::wire::{Compare, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, bytes};
use crate::http::{ConnectionLimits, HttpClient, MAX_REQUEST_CONNECTIONS};
use crate::key::{check_delete_prefix, check_key};
use crate::watch::{WatchRegistry, WatchTarget};
use crate::{
    Config, Error, KvPair, Lock, PutOptions, Result, Store, Txn, TxnResult, Watch, WatchOptions,
};

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
    /// The leases of the TTL keys this store wrote.
    ttl_leases: ttl::TtlLeases,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("transport", &self.inner.client.transport)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl EtcdStore {
    pub(crate) fn new(endpoints: &[&str], config: Config) -> Result<Self> {
        let transport = Self::transport(endpoints, &config)?;
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
                client: EtcdClient::new(transport, credentials),
                config,
                registry: WatchRegistry::default(),
                hub: hub::Hub::default(),
                ttl_leases: ttl::TtlLeases::default(),
            }),
        })
    }

    /// The transport `config` asks for.
    fn transport(endpoints: &[&str], config: &Config) -> Result<Box<dyn transport::Transport>> {
        match config.etcd_transport {
            #[cfg(feature = "grpc")]
            crate::EtcdTransport::Grpc => Ok(Box::new(grpc::Grpc::new(
                endpoints,
                config.timeout,
                config.tls.as_ref(),
            )?)),
            #[cfg(not(feature = "grpc"))]
            crate::EtcdTransport::Grpc => Err(crate::Error::Unsupported {
                backend: "etcd",
                what: "gRPC: this build of kvmesh left it out: enable the `grpc` cargo feature"
                    .into(),
            }),
            _ => {
                // Watch streams are bounded by the hub (one per watched
                // prefix or directory), not here: etcd sets no per-client
                // connection limit.
                let limits = ConnectionLimits {
                    requests: MAX_REQUEST_CONNECTIONS,
                    long_lived: tokio::sync::Semaphore::MAX_PERMITS,
                };
                let http = HttpClient::new(endpoints, Vec::new(), config.tls.as_ref(), limits)?;
                Ok(Box::new(gateway::Gateway::new(http, config.timeout)))
            }
        }
    }

    /// Revokes those of `replaced` (the leases of values a write replaced
    /// or deleted) that this store granted for TTL keys.
    async fn revoke_replaced(&self, replaced: impl IntoIterator<Item = i64>) {
        for lease in self.inner.ttl_leases.take_ours(replaced) {
            if let Err(error) = self.inner.client.revoke_lease(lease).await {
                // The write is done (a failure here must not say otherwise);
                // the lease holds no key now and ends at its TTL.
                tracing::debug!(%error, lease, "etcd: a replaced TTL lease was not revoked");
            }
        }
    }

    /// A write without TTL.
    #[tracing::instrument(level = "debug", skip(self, value), fields(len = value.len()))]
    async fn put_plain(&self, key: &str, value: Bytes) -> Result<()> {
        check_key(key)?;
        let replaced = self
            .inner
            .client
            .put(key, &value, 0, self.inner.ttl_leases.any())
            .await?;
        self.revoke_replaced([replaced]).await;
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
impl Store for EtcdStore {
    #[tracing::instrument(level = "debug", skip(self, value, options), fields(len = value.len()))]
    async fn put_with(&self, key: &str, value: Bytes, options: PutOptions) -> Result<()> {
        check_key(key)?;
        let Some(ttl) = options.ttl else {
            return self.put_plain(key, value).await;
        };
        crate::ttl::check_ttl(ttl, crate::ttl::MAX_TTL)?;
        let lease = self.inner.client.grant_lease(ttl).await?;
        // Ours before the write, so that a racing write that replaces it
        // revokes it.
        self.inner.ttl_leases.add(lease, ttl);
        match self.inner.client.put(key, &value, lease, true).await {
            Ok(replaced) => {
                self.revoke_replaced([replaced]).await;
                Ok(())
            }
            // It may have been applied: the lease stays, and ends the key
            // at its TTL as asked (revoking it would delete a key the
            // caller cannot know was written).
            Err(error @ (Error::OutcomeUnknown { .. } | Error::Timeout { .. })) => Err(error),
            Err(error) => {
                self.inner.ttl_leases.take_ours([lease]);
                let _ = self.inner.client.revoke_lease(lease).await;
                Err(error)
            }
        }
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
        let replaced = (self.inner.client)
            .delete(key, false, self.inner.ttl_leases.any())
            .await?;
        self.revoke_replaced(replaced).await;
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
        let replaced = (self.inner.client)
            .delete(prefix, true, self.inner.ttl_leases.any())
            .await?;
        self.revoke_replaced(replaced).await;
        Ok(())
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
            None => Compare::absent(bytes(key)),
            Some(0) => return Ok(false),
            Some(version) => Compare::modified_at(bytes(key), version),
        };
        let put = RequestOp::Put(PutRequest {
            key: bytes(key),
            value: value.clone(),
            lease: 0,
            prev_kv: self.inner.ttl_leases.any(),
        });
        let outcome = self
            .inner
            .client
            .txn(&TxnRequest {
                compare: vec![guard],
                success: vec![put],
                failure: vec![],
            })
            .await
            .map_err(|e| with_value_size(e, key, value.len()))?;
        self.revoke_replaced(outcome.replaced_leases).await;
        Ok(outcome.succeeded)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn lock_holder(&self, key: &str) -> Result<Option<KvPair>> {
        check_key(key)?;
        mutex::holder(&self.inner, key).await
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
        let (range_key, range_end) = range_of(key, false);
        let outcome = self
            .inner
            .client
            .txn(&TxnRequest {
                compare: vec![Compare::modified_at(bytes(key), previous)],
                success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                    key: range_key,
                    range_end,
                    prev_kv: self.inner.ttl_leases.any(),
                })],
                failure: vec![],
            })
            .await?;
        self.revoke_replaced(outcome.replaced_leases).await;
        Ok(outcome.succeeded)
    }
}
