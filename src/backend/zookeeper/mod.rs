//! The ZooKeeper backend (in progress: keys, ranges, compare-and-swap and
//! TTL keys; watches, locks and transactions come next, then `zk://`).
//!
//! - A key is a node under the store's root, one node name per piece
//!   between `/`s ([`paths`]): ZooKeeper's own tools read it where it is.
//! - Parents kvmesh creates only to hold keys, and deleted keys, are
//!   marker nodes, not keys ([`nodes`]); idle markers are collected
//!   ([`collect`]).
//! - A key's version is its node's `mzxid`; compare-and-swap is ZooKeeper's
//!   own version check on the node, so the compare and the write are one
//!   step.
//! - A range is read level by level and checked unchanged ([`range`]).
//! - One session per store, made anew once expired ([`session`]).
//! - TTL keys are TTL nodes, marked so that a stat shows them ([`put`]).

mod collect;
mod contenders;
mod lock;
mod nodes;
mod paths;
mod put;
mod range;
mod session;
#[cfg(test)]
mod tests;
mod txn;
mod walk;
mod watch;

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use self::session::{Digest, Session, Settings};
use crate::key::{check_delete_prefix, check_key};
use crate::watch::{WatchRegistry, WatchTarget};
use crate::{
    Config, Error, KvPair, Lock, PutOptions, Result, Store, Txn, TxnResult, Watch, WatchOptions,
};

/// A ZooKeeper store.
pub(crate) struct ZooKeeperStore {
    session: Arc<Session>,
    root: String,
    /// The marker collector ([`collect`]), started on first use (a store
    /// may be made outside a runtime).
    collector: OnceLock<tokio::task::JoinHandle<()>>,
    registry: WatchRegistry,
    hub: Arc<watch::Hub>,
}

impl Drop for ZooKeeperStore {
    fn drop(&mut self) {
        if let Some(collector) = self.collector.get() {
            collector.abort();
        }
    }
}

impl fmt::Debug for ZooKeeperStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZooKeeperStore")
            .field("session", &self.session)
            .field("root", &self.root)
            .finish()
    }
}

impl ZooKeeperStore {
    /// A store on the servers `endpoints` (`host:port`; the last may end
    /// with the chroot, `host:port/path`: keys go under it, by default
    /// under `/kvmesh`). Connects on first use.
    pub(crate) fn new(endpoints: &[&str], config: &Config) -> Result<Self> {
        let Some((last, others)) = endpoints.split_last() else {
            return Err(Error::InvalidArgument(
                "zk:// needs at least one host:port".into(),
            ));
        };
        let (last, chroot) = match last.find('/') {
            Some(at) => (&last[..at], Some(&last[at..])),
            None => (*last, None),
        };
        let mut hosts: Vec<&str> = others.to_vec();
        hosts.push(last);
        if let Some(bad) = hosts
            .iter()
            .find(|e| e.is_empty() || e.contains([',', '/', '@']))
        {
            return Err(Error::InvalidArgument(format!(
                "{bad:?} is not a ZooKeeper host:port (a chroot goes after the last one)"
            )));
        }
        if config.tls.is_some() {
            return Err(Error::Unsupported {
                backend: "zookeeper",
                what: "TLS (not yet: use a loopback or private network)".into(),
            });
        }
        let digest = match (&config.username, &config.password) {
            (Some(user), Some(password)) if !user.contains(':') => Some(Digest {
                user: user.clone(),
                password: password.clone(),
            }),
            (None, None) => None,
            _ => {
                return Err(Error::InvalidArgument(
                    "ZooKeeper's digest identity needs a user (without ':') and a password".into(),
                ));
            }
        };
        let settings = Settings {
            servers: hosts.join(","),
            timeout: config.timeout,
            session_timeout: config.lock_ttl,
            digest,
            fresh_reads: config.zookeeper_reads == crate::ZooKeeperReads::Fresh,
        };
        Ok(ZooKeeperStore {
            session: Arc::new(Session::new(settings)),
            root: paths::root(chroot)?,
            collector: OnceLock::new(),
            registry: WatchRegistry::default(),
            hub: Arc::default(),
        })
    }

    fn path(&self, key: &str) -> Result<String> {
        check_key(key)?;
        self.collector
            .get_or_init(|| collect::start(&self.session, &self.root));
        Ok(paths::node_path(&self.root, key))
    }

    /// For `connect`: a session, and a read of the root.
    pub(crate) async fn check_reachable(&self) -> Result<()> {
        let root = self.root.clone();
        self.session
            .run("zookeeper connect", session::Repeat::Safe, |client| {
                let root = root.clone();
                async move { client.check_stat(&root).await.map(drop) }
            })
            .await
    }

    async fn open_watch(&self, target: WatchTarget, options: WatchOptions) -> Result<Watch> {
        let (events, initial) = watch::open(self, &target, options).await?;
        let watch = Watch::new(events, self.registry.register(target));
        Ok(watch.with_initial_state(initial))
    }
}

#[async_trait::async_trait]
impl Store for ZooKeeperStore {
    #[tracing::instrument(level = "debug", skip(self, value, options), fields(len = value.len()))]
    async fn put_with(&self, key: &str, value: Bytes, options: PutOptions) -> Result<()> {
        let path = self.path(key)?;
        nodes::check_value(key, &path, &value)?;
        match options.ttl {
            None => put::put(&self.session, &path, &value).await,
            Some(ttl) => {
                crate::ttl::check_ttl(ttl, put::MAX_TTL)?;
                put::put_ttl(&self.session, &path, &value, ttl).await
            }
        }
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn get(&self, key: &str) -> Result<Option<KvPair>> {
        let path = self.path(key)?;
        nodes::get(&self.session, key, &path).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        nodes::delete(&self.session, &path).await
    }

    async fn watch(&self, key: &str, options: WatchOptions) -> Result<Watch> {
        self.path(key)?;
        self.open_watch(WatchTarget::Key(key.to_owned()), options)
            .await
    }

    fn cancel_watch(&self, key: &str) -> usize {
        self.registry.cancel(&WatchTarget::Key(key.to_owned()))
    }

    #[tracing::instrument(level = "debug", skip(self, value))]
    async fn acquire(&self, key: &str, value: Bytes) -> Result<Lock> {
        let path = self.path(key)?;
        nodes::check_value(key, &path, &value)?;
        let lock = lock::lock(&self.session, &self.root, key, &value, true).await?;
        lock.ok_or_else(|| Error::LockLost {
            key: key.to_owned(),
        })
    }

    #[tracing::instrument(level = "debug", skip(self, value))]
    async fn try_acquire(&self, key: &str, value: Bytes) -> Result<Option<Lock>> {
        let path = self.path(key)?;
        nodes::check_value(key, &path, &value)?;
        lock::lock(&self.session, &self.root, key, &value, false).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn release(&self, session: &str) -> Result<()> {
        contenders::release(&self.session, &self.root, session).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn get_range(&self, prefix: &str) -> Result<Vec<KvPair>> {
        range::read_range(&self.session, &self.root, prefix).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete_range(&self, prefix: &str) -> Result<()> {
        check_delete_prefix(prefix)?;
        range::delete_range(&self.session, &self.root, prefix).await
    }

    async fn watch_range(&self, prefix: &str, options: WatchOptions) -> Result<Watch> {
        self.open_watch(WatchTarget::Prefix(prefix.to_owned()), options)
            .await
    }

    fn cancel_watch_range(&self, prefix: &str) -> usize {
        self.registry
            .cancel(&WatchTarget::Prefix(prefix.to_owned()))
    }

    #[tracing::instrument(level = "debug", skip(self, value))]
    async fn atomic_put(&self, key: &str, value: Bytes, previous: Option<u64>) -> Result<bool> {
        let path = self.path(key)?;
        nodes::check_value(key, &path, &value)?;
        match previous {
            None => nodes::create_only(&self.session, &path, &value).await,
            Some(version) => nodes::swap(&self.session, &path, &value, version).await,
        }
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn atomic_delete(&self, key: &str, previous: u64) -> Result<bool> {
        let path = self.path(key)?;
        nodes::delete_if(&self.session, &path, previous).await
    }

    async fn lock_holder(&self, key: &str) -> Result<Option<KvPair>> {
        self.path(key)?;
        contenders::holder(&self.session, &self.root, key).await
    }

    #[tracing::instrument(level = "debug", skip(self, txn), fields(ops = txn.len()))]
    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        self.collector
            .get_or_init(|| collect::start(&self.session, &self.root));
        txn::apply(&self.session, &self.root, txn).await
    }
}
