//! Leader election on any store, built on its locks: the leader is the
//! holder of the lock `<root><name>`, whose value is the leader's.
//!
//! On etcd that lock is etcd's own mutex protocol, which is also
//! `concurrency.Election`'s: a campaign key per candidate under
//! `<root><name>___lock/`, holding its value, the lowest create revision
//! leading. So `etcdctl elect '<root><name>___lock' VALUE` campaigns in the
//! same election, `etcdctl elect -l '<root><name>___lock'` observes a
//! kvmesh leader, and [`Election::leader`] and [`Election::observe`] see a
//! leader elected by `etcdctl` (through [`Store::lock_holder`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> kvmesh::Result<()> {
//! use kvmesh::Bytes;
//! use kvmesh::election::Election;
//!
//! let election = Election::new(kvmesh::connect("memory://").await?);
//! let leadership = election.campaign("scheduler", Bytes::from("node-a")).await?;
//! assert_eq!(election.leader("scheduler").await?, Some(Bytes::from("node-a")));
//! leadership.resign().await?;
//! assert_eq!(election.leader("scheduler").await?, None);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::{Error, Lock, Result, Store, WatchOptions};

/// Where elections live unless [`Election::with_root`] says otherwise.
pub const DEFAULT_ROOT: &str = "kvmesh/election/";

/// Elections on one store.
#[derive(Debug, Clone)]
pub struct Election {
    store: Arc<dyn Store>,
    root: String,
}

impl Election {
    /// Elections under [`DEFAULT_ROOT`].
    pub fn new(store: Arc<dyn Store>) -> Self {
        Election::with_root(store, DEFAULT_ROOT)
    }

    /// Elections under another key prefix.
    pub fn with_root(store: Arc<dyn Store>, root: impl Into<String>) -> Self {
        Election {
            store,
            root: root.into(),
        }
    }

    fn key(&self, name: &str) -> Result<String> {
        if name.is_empty() {
            return Err(Error::InvalidArgument("an election needs a name".into()));
        }
        Ok(format!("{}{name}", self.root))
    }

    /// Waits until this caller leads `name`, announcing `value`. Cancel-safe,
    /// like [`Store::acquire`]: dropping the future leaves no candidacy behind.
    pub async fn campaign(&self, name: &str, value: Bytes) -> Result<Leadership> {
        let lock = self.store.acquire(&self.key(name)?, value.clone()).await?;
        Ok(Leadership { lock, value })
    }

    /// The current leader's value, if there is a leader (on etcd, also a
    /// leader elected with `etcdctl elect`; see the module docs).
    pub async fn leader(&self, name: &str) -> Result<Option<Bytes>> {
        let holder = self.store.lock_holder(&self.key(name)?).await?;
        Ok(holder.map(|pair| pair.value))
    }

    /// Leader changes of `name`: first the current leader's value (if any),
    /// then `Some(value)` for each new leader and `None` when the office is
    /// empty. Quick successions may come as their latest state (always on
    /// Consul, which coalesces changes).
    pub async fn observe(&self, name: &str) -> Result<LeaderStream> {
        let key = self.key(name)?;
        // Every key of the election starts with its key (on etcd, its
        // mutex's contenders too): each change there may be a new leader,
        // which the store's `lock_holder` names.
        let watch = self
            .store
            .watch_range(&key, WatchOptions::default())
            .await?;
        // The leader when the watch began: reported first, if there is one.
        let first = self.store.lock_holder(&key).await?;
        let shown = first.as_ref().map(term);
        let opening = first.map(|pair| Ok(Some(pair.value)));
        let state = (watch, self.store.clone(), key, shown);
        let later =
            futures::stream::unfold(state, |(mut watch, store, key, mut shown)| async move {
                loop {
                    if let Err(error) = watch.next().await? {
                        return Some((Err(error), (watch, store, key, shown)));
                    }
                    let holder = match store.lock_holder(&key).await {
                        Ok(holder) => holder,
                        Err(error) => return Some((Err(error), (watch, store, key, shown))),
                    };
                    let now = holder.as_ref().map(term);
                    if now != shown {
                        shown = now;
                        let value = holder.map(|pair| pair.value);
                        return Some((Ok(value), (watch, store, key, shown)));
                    }
                }
            });
        let changes = futures::stream::iter(opening).chain(later);
        Ok(LeaderStream {
            changes: changes.boxed(),
        })
    }
}

/// What tells one leader's term from the next: where its value is kept, and
/// the version it was written at.
fn term(holder: &crate::KvPair) -> (String, u64) {
    (holder.key.clone(), holder.version)
}

/// This caller's term as leader: the election's lock, held.
///
/// - Dropped or [`Leadership::resign`]ed: the office is given up (on drop,
///   in the background) and the next candidate takes it.
/// - Renewals of the lock's session or lease run every `lock_ttl / 3`. One
///   that fails is tried again; once 2/3 of the `lock_ttl` have passed since
///   the last renewal that worked was sent (before the server can free the
///   lock, even while a renewal hangs), or the server says the lock is gone,
///   the term is over: [`Leadership::lost`] resolves.
/// - [`Leadership::lock`] with [`Txn::check_held`](crate::Txn::check_held)
///   makes writes the store refuses once the term is over.
/// - A lost term does not come back: stop acting as leader, and
///   [`Election::campaign`] again to run for the next one. The fencing
///   token tells a resource a stale leader's requests from the new one's.
#[must_use = "dropping a Leadership resigns it"]
pub struct Leadership {
    lock: Lock,
    value: Bytes,
}

impl Leadership {
    /// Resolves when this leadership is lost (session or lease expired, key
    /// deleted): stop acting as leader.
    pub async fn lost(&self) {
        self.lock.lost().await
    }

    /// True once this leadership is known to be lost.
    pub fn is_lost(&self) -> bool {
        self.lock.is_lost()
    }

    /// Grows with every new leader; give it to the resources you protect.
    pub fn fencing_token(&self) -> u64 {
        self.lock.fencing_token()
    }

    /// The election's lock this term holds: with
    /// [`Txn::check_held`](crate::Txn::check_held) it makes a write that only
    /// the current leader can make (the store refuses it once the term is
    /// over, resigned or lost).
    pub fn lock(&self) -> &Lock {
        &self.lock
    }

    /// The value this leader announced.
    pub fn value(&self) -> &Bytes {
        &self.value
    }

    /// Steps down, letting the next candidate lead.
    pub async fn resign(self) -> Result<()> {
        self.lock.release().await
    }
}

impl fmt::Debug for Leadership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leadership")
            .field("lock", &self.lock)
            .finish()
    }
}

/// The stream of leader changes of one election.
pub struct LeaderStream {
    changes: BoxStream<'static, Result<Option<Bytes>>>,
}

impl fmt::Debug for LeaderStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderStream").finish_non_exhaustive()
    }
}

impl Stream for LeaderStream {
    type Item = Result<Option<Bytes>>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.changes.poll_next_unpin(cx)
    }
}
