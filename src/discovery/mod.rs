//! Service discovery on any store: nodes register under a service name with a
//! TTL that a background task refreshes; others list the members or watch
//! them join, change and leave.
//!
//! Each node is one key, `<root><service>/<node id>`, whose value is the
//! node as JSON — `{"id": "...", "address": "...", "meta": {"k": "v"}}` — so
//! other languages can read the same registry.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> kvmesh::Result<()> {
//! use std::time::Duration;
//! use futures::StreamExt;
//! use kvmesh::discovery::{Discovery, MemberEvent, Node};
//!
//! let discovery = Discovery::new(kvmesh::connect("memory://").await?);
//! let mut members = discovery.watch_members("web").await?;
//! let node = Node::new("web-1", "10.0.0.1:8080");
//! let registration = discovery.register("web", node.clone(), Duration::from_secs(30)).await?;
//! assert!(matches!(members.next().await, Some(Ok(MemberEvent::Joined(n))) if n == node));
//! registration.deregister().await?;
//! assert!(matches!(members.next().await, Some(Ok(MemberEvent::Left(n))) if n == node));
//! # Ok(())
//! # }
//! ```

mod registration;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

pub use self::registration::Registration;
use crate::cache::Cache;
use crate::{Error, KvEvent, Result, Store, WatchOptions};

/// Where registrations live unless [`Discovery::with_root`] says otherwise.
pub const DEFAULT_ROOT: &str = "kvmesh/discovery/";

/// One registered node of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Unique within its service; no `/`.
    pub id: String,
    /// How to reach it (`host:port`, a URL, ...).
    pub address: String,
    /// Free-form labels.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
}

impl Node {
    /// A node with no metadata.
    pub fn new(id: impl Into<String>, address: impl Into<String>) -> Self {
        Node {
            id: id.into(),
            address: address.into(),
            meta: BTreeMap::new(),
        }
    }

    /// Adds a label.
    #[must_use]
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.meta.insert(key.into(), value.into());
        self
    }
}

/// A change of a service's membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberEvent {
    /// A node registered (or was already registered when the watch began).
    Joined(Node),
    /// A node deregistered, was dropped, or stopped refreshing its TTL.
    Left(Node),
    /// A registered node changed its address or metadata.
    Updated(Node),
}

/// Registers nodes and observes services on one store.
#[derive(Debug, Clone)]
pub struct Discovery {
    store: Arc<dyn Store>,
    root: String,
    /// The keys this handle and its clones keep registered.
    registered: registration::Claims,
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') {
        return Err(Error::InvalidArgument(format!(
            "a {what} must be non-empty and without '/': {name:?}"
        )));
    }
    Ok(())
}

impl Discovery {
    /// Discovery under [`DEFAULT_ROOT`].
    pub fn new(store: Arc<dyn Store>) -> Self {
        Discovery::with_root(store, DEFAULT_ROOT)
    }

    /// Discovery under another key prefix (it should end with `/`).
    pub fn with_root(store: Arc<dyn Store>, root: impl Into<String>) -> Self {
        Discovery {
            store,
            root: root.into(),
            registered: registration::Claims::default(),
        }
    }

    fn service_prefix(&self, service: &str) -> Result<String> {
        check_name("service name", service)?;
        Ok(format!("{}{service}/", self.root))
    }

    /// Registers `node` in `service` with `ttl`, refreshed every `ttl / 3`
    /// until the returned handle is dropped or [`Registration::deregister`]ed
    /// (both remove the node). A node whose process dies disappears within
    /// the TTL (plus the backend's documented lag).
    ///
    /// When refreshes fail (the store is unreachable), the registration
    /// keeps trying; once none has succeeded for a whole TTL the node may
    /// have expired and [`Registration::lost`] resolves. It comes back
    /// with the next refresh that succeeds. See [`Registration`].
    ///
    /// A node id is registered once per service at a time through one
    /// `Discovery` (and its clones): a second `register` while the first
    /// lives is [`Error::InvalidArgument`]. Two processes that register the
    /// same id share one entry: the last write shows, and the first to
    /// deregister removes it until the other's next refresh.
    pub async fn register(&self, service: &str, node: Node, ttl: Duration) -> Result<Registration> {
        check_name("node id", &node.id)?;
        let key = format!("{}{}", self.service_prefix(service)?, node.id);
        let value = Bytes::from(
            serde_json::to_vec(&node)
                .map_err(|e| Error::InvalidArgument(format!("cannot encode the node: {e}")))?,
        );
        let claim = self.registered.claim(&key).await.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "node {:?} is already registered in {service:?} by this process",
                node.id
            ))
        })?;
        Registration::start(self.store.clone(), claim, node, value, ttl).await
    }

    /// The nodes registered in `service`, by id.
    pub async fn members(&self, service: &str) -> Result<Vec<Node>> {
        let prefix = self.service_prefix(service)?;
        let pairs = self.store.get_range(&prefix).await?;
        pairs.iter().map(|pair| decode(&pair.value)).collect()
    }

    /// A local copy of `service`'s members, kept current by one watch
    /// ([`Cache`]): [`MemberCache::members`] answers from memory, with no
    /// request. For a service that reads its members often (each request it
    /// routes); [`Discovery::members`] stays one read, with no watch left
    /// behind.
    pub async fn cache(&self, service: &str) -> Result<MemberCache> {
        let prefix = self.service_prefix(service)?;
        let cache = Cache::open(self.store.clone(), &prefix).await?;
        Ok(MemberCache { cache })
    }

    /// Membership changes of `service`: first a `Joined` for every current
    /// member, then every join, update and leave.
    pub async fn watch_members(&self, service: &str) -> Result<MemberStream> {
        let prefix = self.service_prefix(service)?;
        let watch = self
            .store
            .watch_range(&prefix, WatchOptions::default())
            .await?;
        let known: HashMap<String, Node> = HashMap::new();
        let events = futures::stream::unfold((watch, known), |(mut watch, mut known)| async move {
            loop {
                let event = match watch.next().await? {
                    Ok(event) => event,
                    Err(error) => return Some((Err(error), (watch, known))),
                };
                let change = match event {
                    KvEvent::Put(pair) => match decode(&pair.value) {
                        Err(error) => Some(Err(error)),
                        Ok(node) => match known.insert(pair.key, node.clone()) {
                            None => Some(Ok(MemberEvent::Joined(node))),
                            Some(old) if old != node => Some(Ok(MemberEvent::Updated(node))),
                            Some(_) => None, // a refresh: nothing changed
                        },
                    },
                    KvEvent::Delete { key, .. } => {
                        known.remove(&key).map(|node| Ok(MemberEvent::Left(node)))
                    }
                };
                if let Some(change) = change {
                    return Some((change, (watch, known)));
                }
            }
        });
        Ok(MemberStream {
            events: events.boxed(),
        })
    }
}

/// A local copy of one service's members, from [`Discovery::cache`].
/// Clones share one copy.
#[derive(Debug, Clone)]
pub struct MemberCache {
    cache: Cache,
}

impl MemberCache {
    /// The members, by id, from memory. An entry that is not a node (written
    /// by something else) is an error, as in [`Discovery::members`].
    pub fn members(&self) -> Result<Vec<Node>> {
        let pairs = self.cache.list();
        pairs.iter().map(|pair| decode(&pair.value)).collect()
    }

    /// The copy underneath: its version, `wait_for`, `changes`, `is_stale`.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }
}

fn decode(value: &[u8]) -> Result<Node> {
    serde_json::from_slice(value)
        .map_err(|e| Error::undecodable("a discovery entry is not a node", e))
}

/// The stream of [`MemberEvent`]s of one service.
pub struct MemberStream {
    events: BoxStream<'static, Result<MemberEvent>>,
}

impl fmt::Debug for MemberStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberStream").finish_non_exhaustive()
    }
}

impl Stream for MemberStream {
    type Item = Result<MemberEvent>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.events.poll_next_unpin(cx)
    }
}
