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
mod nodes;
mod paths;
mod put;
mod range;
mod session;
#[cfg(test)]
mod tests;
mod watch;

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;

use self::session::{Digest, Session, Settings};
use crate::key::{check_delete_prefix, check_key};
use crate::watch::{WatchRegistry, WatchTarget};
use crate::{Config, Error, KvPair, Result, Watch, WatchOptions};

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
    /// A store on the servers `endpoints` (`host:port`), keys under
    /// `chroot` (default `/kvmesh`). Connects on first use.
    pub(crate) fn new(endpoints: &[&str], chroot: Option<&str>, config: &Config) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(Error::InvalidArgument(
                "the zookeeper backend needs at least one host:port".into(),
            ));
        }
        if let Some(bad) = endpoints
            .iter()
            .find(|e| e.is_empty() || e.contains([',', '/']))
        {
            return Err(Error::InvalidArgument(format!(
                "{bad:?} is not a ZooKeeper host:port"
            )));
        }
        let digest = match (&config.username, &config.password) {
            (Some(user), Some(password)) => Some(Digest {
                user: user.clone(),
                password: password.clone(),
            }),
            (None, None) => None,
            _ => {
                return Err(Error::InvalidArgument(
                    "ZooKeeper's digest identity needs both a user and a password".into(),
                ));
            }
        };
        let settings = Settings {
            servers: endpoints.join(","),
            timeout: config.timeout,
            session_timeout: config.lock_ttl,
            digest,
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

    pub(crate) async fn put(&self, key: &str, value: Bytes) -> Result<()> {
        let path = self.path(key)?;
        nodes::check_value(key, &value)?;
        put::put(&self.session, &path, &value).await
    }

    pub(crate) async fn put_ttl(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        let path = self.path(key)?;
        nodes::check_value(key, &value)?;
        crate::ttl::check_ttl(ttl, put::MAX_TTL)?;
        put::put_ttl(&self.session, &path, &value, ttl).await
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<KvPair>> {
        let path = self.path(key)?;
        nodes::get(&self.session, key, &path).await
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        nodes::delete(&self.session, &path).await
    }

    pub(crate) async fn get_range(&self, prefix: &str) -> Result<Vec<KvPair>> {
        range::read_range(&self.session, &self.root, prefix).await
    }

    pub(crate) async fn delete_range(&self, prefix: &str) -> Result<()> {
        check_delete_prefix(prefix)?;
        range::delete_range(&self.session, &self.root, prefix).await
    }

    pub(crate) async fn atomic_put(
        &self,
        key: &str,
        value: Bytes,
        previous: Option<u64>,
    ) -> Result<bool> {
        let path = self.path(key)?;
        nodes::check_value(key, &value)?;
        match previous {
            None => nodes::create_only(&self.session, &path, &value).await,
            Some(version) => nodes::swap(&self.session, &path, &value, version).await,
        }
    }

    pub(crate) async fn atomic_delete(&self, key: &str, previous: u64) -> Result<bool> {
        let path = self.path(key)?;
        nodes::delete_if(&self.session, &path, previous).await
    }

    pub(crate) async fn watch(&self, key: &str, options: WatchOptions) -> Result<Watch> {
        self.path(key)?;
        self.open_watch(WatchTarget::Key(key.to_owned()), options)
            .await
    }

    pub(crate) async fn watch_range(&self, prefix: &str, options: WatchOptions) -> Result<Watch> {
        self.open_watch(WatchTarget::Prefix(prefix.to_owned()), options)
            .await
    }

    pub(crate) fn cancel_watch(&self, key: &str) -> usize {
        self.registry.cancel(&WatchTarget::Key(key.to_owned()))
    }

    pub(crate) fn cancel_watch_range(&self, prefix: &str) -> usize {
        self.registry
            .cancel(&WatchTarget::Prefix(prefix.to_owned()))
    }

    async fn open_watch(&self, target: WatchTarget, options: WatchOptions) -> Result<Watch> {
        let (events, initial) = watch::open(self, &target, options).await?;
        let watch = Watch::new(events, self.registry.register(target));
        Ok(watch.with_initial_state(initial))
    }
}
