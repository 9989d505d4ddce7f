//! One async API over distributed key/value stores: Consul, etcd, and an
//! embedded in-process store.
//!
//! Services use kvmesh to register machines in a cluster, keep cluster
//! metadata, watch it change and take distributed locks. Every backend
//! implements the same [`Store`] trait with the same semantics, so code written
//! against `memory://` in a test runs unchanged against Consul or etcd.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> kvmesh::Result<()> {
//! use futures::StreamExt;
//! use kvmesh::{Bytes, KvEvent, WatchOptions};
//!
//! let store = kvmesh::connect("memory://").await?;
//! store.put("cluster/nodes/a", Bytes::from("10.0.0.1:7000")).await?;
//!
//! // A watch yields the current state first, then every change.
//! let mut nodes = store.watch_range("cluster/nodes/", WatchOptions::default()).await?;
//! store.put("cluster/nodes/b", Bytes::from("10.0.0.2:7000")).await?;
//! for expected in ["cluster/nodes/a", "cluster/nodes/b"] {
//!     let Some(Ok(KvEvent::Put(pair))) = nodes.next().await else { panic!() };
//!     assert_eq!(pair.key, expected);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Semantics every backend shares
//! - Keys are non-empty UTF-8 strings and round-trip exactly; the empty key
//!   is [`Error::InvalidKey`], never a request for the whole keyspace.
//! - [`KvPair::version`] is never 0 and strictly increases on every write.
//! - A [`Watch`] never silently ends or skips the final state: it resumes
//!   after failures, yields events in version order without duplicates, and
//!   when history is gone re-reads the state and yields the difference.
//! - Locks have at most one holder; [`Lock::fencing_token`] grows every time
//!   the lock changes hands.

mod backend;
mod backoff;
#[cfg(any(feature = "consul", feature = "etcd"))]
mod base64_bytes;
mod config;
pub mod discovery;
pub mod election;
mod error;
mod ext;
mod forward;
#[cfg(any(feature = "consul", feature = "etcd"))]
mod http;
mod key;
#[cfg(any(feature = "consul", feature = "etcd"))]
mod lifetime;
mod lock;
mod prefixed;
pub mod semaphore;
mod store;
mod tls;
mod txn;
mod url;
mod watch;

use std::sync::Arc;

pub use bytes::Bytes;

pub use crate::config::{Backend, Config};
pub use crate::error::{Error, Result, SourceError};
pub use crate::ext::{JsonEvent, StoreExt};
pub use crate::lock::Lock;
pub use crate::prefixed::Prefixed;
pub use crate::store::{KvEvent, KvPair, PutOptions, Store, WatchOptions};
pub use crate::tls::TlsConfig;
pub use crate::txn::{Txn, TxnResult};
pub use crate::watch::Watch;

/// Creates a store for `backend` (the seed's `CreateStore`).
///
/// Not async: a network backend connects lazily on first use. The memory
/// backend takes no endpoints; each call makes a new, empty store.
///
/// ```
/// use kvmesh::{Backend, Config};
/// let store = kvmesh::create_store(Backend::Memory, &[], Config::default()).unwrap();
/// ```
pub fn create_store(
    backend: Backend,
    endpoints: &[&str],
    config: Config,
) -> Result<Arc<dyn Store>> {
    config.validate()?;
    if config.tls.is_some() && !cfg!(feature = "tls") {
        return Err(Error::Unsupported {
            backend: backend.name(),
            what: "TLS: this build of kvmesh left it out: enable the `tls` cargo feature".into(),
        });
    }
    match backend {
        Backend::Memory => {
            if !endpoints.is_empty() {
                return Err(Error::InvalidArgument(
                    "the memory backend takes no endpoints".into(),
                ));
            }
            Ok(Arc::new(backend::memory::MemoryStore::new(&config)))
        }
        #[cfg(feature = "consul")]
        Backend::Consul => Ok(Arc::new(backend::consul::ConsulStore::new(
            endpoints, config,
        )?)),
        #[cfg(feature = "etcd")]
        Backend::Etcd => Ok(Arc::new(backend::etcd::EtcdStore::new(endpoints, config)?)),
        #[allow(unreachable_patterns)]
        left_out => Err(Error::Unsupported {
            backend: left_out.name(),
            what: format!(
                "this build of kvmesh left it out: enable the `{}` cargo feature",
                left_out.name()
            ),
        }),
    }
}

/// Opens a store from a URL: `memory://`, `consul://host:port[,host:port...]`,
/// `etcd://host:port[,...]`, with options as query parameters
/// (`?timeout=5s`, `?lock_ttl=15s`, `?history=10000`).
///
/// Unlike [`create_store`], it checks that a network store answers before
/// it returns (one endpoint answering is enough), within the `timeout`:
/// [`Error::Unreachable`] naming the endpoints otherwise, and
/// [`Error::PermissionDenied`] for etcd credentials it refuses.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvmesh::Result<()> {
/// let store = kvmesh::connect("memory://?history=100").await?;
/// assert!(store.get_range("").await?.is_empty());
/// assert!(kvmesh::connect("memory://?colour=blue").await.is_err()); // unknown options are refused
/// # Ok(())
/// # }
/// ```
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    let (url, config) = url::parse_url(url)?;
    let endpoints: Vec<&str> = url.endpoints.iter().map(String::as_str).collect();
    match url.backend {
        #[cfg(feature = "consul")]
        Backend::Consul if config.tls.is_none() || cfg!(feature = "tls") => {
            config.validate()?;
            let store = backend::consul::ConsulStore::new(&endpoints, config)?;
            store.check_reachable().await?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "etcd")]
        Backend::Etcd if config.tls.is_none() || cfg!(feature = "tls") => {
            config.validate()?;
            let store = backend::etcd::EtcdStore::new(&endpoints, config)?;
            store.check_reachable().await?;
            Ok(Arc::new(store))
        }
        // The memory store, and what this build cannot open (refused there).
        _ => create_store(url.backend, &endpoints, config),
    }
}

/// Opens a store from a URL like [`connect`], without the check: nothing
/// is sent until the first call, so it works while the store is still
/// down (a service that starts before its store, a test of failures).
///
/// ```
/// let store = kvmesh::connect_lazy("etcd://127.0.0.1:1")?; // nothing listens there
/// # Ok::<(), kvmesh::Error>(())
/// ```
pub fn connect_lazy(url: &str) -> Result<Arc<dyn Store>> {
    let (url, config) = url::parse_url(url)?;
    let endpoints: Vec<&str> = url.endpoints.iter().map(String::as_str).collect();
    create_store(url.backend, &endpoints, config)
}

/// The README's example, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
