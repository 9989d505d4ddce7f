//! One async API over distributed key/value stores: Consul, etcd, Redis,
//! an embedded in-process store and a durable embedded file store
//! (`file:///path/store.redb`).
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
//!   the lock changes hands; [`Txn::check_held`] makes a write the store
//!   applies only while the lock is held.
//! - [`cache::Cache`] keeps a local copy of a prefix current on any store.

mod backend;
mod backoff;
#[cfg(any(feature = "consul", feature = "etcd"))]
mod base64_bytes;
pub mod cache;
mod config;
pub mod discovery;
pub mod election;
mod error;
mod ext;
mod forward;
#[cfg(any(feature = "consul", feature = "etcd"))]
mod http;
mod key;
#[cfg(any(feature = "consul", feature = "etcd", feature = "redis"))]
mod lifetime;
mod lock;
mod open;
mod prefixed;
pub mod semaphore;
mod store;
#[cfg(all(test, any(feature = "grpc", feature = "zookeeper")))]
mod test_servers;
mod tls;
mod ttl;
mod txn;
mod url;
mod watch;

pub use bytes::Bytes;

pub use crate::config::{Backend, Config, EtcdTransport, ZooKeeperReads};
pub use crate::error::{Error, Result, SourceError};
pub use crate::ext::{JsonEvent, StoreExt};
pub use crate::lock::Lock;
pub use crate::open::{connect, connect_lazy, create_store};
pub use crate::prefixed::Prefixed;
pub use crate::store::{KvEvent, KvPair, PutOptions, Store, WatchOptions};
pub use crate::tls::TlsConfig;
pub use crate::txn::{Txn, TxnResult};
pub use crate::watch::Watch;

/// The README's example, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
