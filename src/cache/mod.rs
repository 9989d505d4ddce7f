//! A local copy of every key under a prefix, kept current by one watch:
//! reads are served from memory, with no request.
//!
//! [`Cache::open`] reads the prefix as of one moment (a watch's initial
//! state), then applies every change that watch yields. What the copy
//! promises:
//!
//! - **Consistent**: every state it shows is one the store passed through,
//!   or on Consul (whose watches coalesce changes) a later state; the events
//!   a watch yields together (a transaction's, a coalesced Consul update)
//!   are applied together. No change is applied twice or out of order.
//! - **Never stops**: the watch resumes after failures by itself; where
//!   history is gone it yields the difference. Should the watch fail for
//!   good, the cache reads the prefix again (with backoff) and applies the
//!   difference, reporting it through [`Cache::changes`] as ordinary
//!   changes. Meanwhile it serves the last copy: [`Cache::is_stale`] says
//!   when it cannot reach the store (checked every few seconds while no
//!   change arrives).
//! - **Cheap to share**: clones share one copy and one watch; the watch ends
//!   when the last clone is dropped. Any number of [`Cache::changes`]
//!   subscribers; one that falls far behind gets [`Error::Lagged`] once and
//!   never slows the copy or the others.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> kvmesh::Result<()> {
//! use futures::StreamExt;
//! use kvmesh::Bytes;
//! use kvmesh::cache::{Cache, CacheEvent};
//!
//! let store = kvmesh::connect("memory://").await?;
//! store.put("flags/dark-mode", Bytes::from("on")).await?;
//! let flags = Cache::open(store.clone(), "flags/").await?;
//! assert_eq!(flags.get("flags/dark-mode").unwrap().value, "on");
//!
//! let mut changes = flags.changes();
//! store.put("flags/dark-mode", Bytes::from("off")).await?;
//! let written = store.get("flags/dark-mode").await?.unwrap().version;
//! flags.wait_for(written).await?; // read your own write
//! assert_eq!(flags.get("flags/dark-mode").unwrap().value, "off");
//! match changes.next().await.unwrap()? {
//!     CacheEvent::Put { pair, previous } => {
//!         assert_eq!((pair.value, previous.unwrap().value), ("off".into(), "on".into()));
//!     }
//!     other => panic!("{other:?}"),
//! }
//! # Ok(())
//! # }
//! ```

mod copy;
mod follow;

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use futures::stream::BoxStream;
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use self::copy::Copy;
use crate::{Error, KvPair, Result, Store};

/// How long a copy goes without a change before it checks that its store
/// still answers (one small read); [`Cache::is_stale`] turns true when it
/// does not, false again with the next answer or change.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// One change the copy applied, with the value it replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// `pair` was written; `previous` is what the copy held before, if any.
    Put {
        /// The key, its new value and version.
        pair: KvPair,
        /// The copy's entry it replaced.
        previous: Option<KvPair>,
    },
    /// `previous.key` was deleted at `version`.
    Delete {
        /// The copy's entry that was deleted.
        previous: KvPair,
        /// The store's version of the deletion.
        version: u64,
    },
}

impl CacheEvent {
    /// The key that changed.
    pub fn key(&self) -> &str {
        match self {
            CacheEvent::Put { pair, .. } => &pair.key,
            CacheEvent::Delete { previous, .. } => &previous.key,
        }
    }

    /// The store's version of the change.
    pub fn version(&self) -> u64 {
        match self {
            CacheEvent::Put { pair, .. } => pair.version,
            CacheEvent::Delete { version, .. } => *version,
        }
    }
}

/// A local copy of every key under a prefix, kept current by one watch.
/// Clones share one copy and one watch. See the [module](self) for what it
/// promises.
#[derive(Clone)]
pub struct Cache {
    shared: Arc<Shared>,
}

/// What the clones share; dropping the last one stops the follower.
struct Shared {
    copy: Arc<Copy>,
    _follower: DropGuard,
}

impl Cache {
    /// Reads every key under `prefix`, then follows its changes. Resolves
    /// once the copy holds the whole prefix as of one moment.
    ///
    /// Errors: those of [`Store::watch_range`] (an invalid prefix, an
    /// unreachable store, ...). Keys outside `prefix` never enter the copy.
    pub async fn open(store: Arc<dyn Store>, prefix: &str) -> Result<Cache> {
        let (pairs, watch) = follow::read(&store, prefix).await?;
        let copy = Arc::new(Copy::new(prefix.to_owned(), pairs));
        let stop = CancellationToken::new();
        tokio::spawn(follow::follow(
            store.clone(),
            copy.clone(),
            watch,
            stop.clone(),
        ));
        Ok(Cache {
            shared: Arc::new(Shared {
                copy,
                _follower: stop.drop_guard(),
            }),
        })
    }

    /// The prefix this copy follows.
    pub fn prefix(&self) -> &str {
        &self.shared.copy.prefix
    }

    /// The copy's entry for `key`, or `None` when the copy does not have it.
    pub fn get(&self, key: &str) -> Option<KvPair> {
        self.shared.copy.get(key)
    }

    /// Every key under the prefix, sorted by key.
    pub fn list(&self) -> Vec<KvPair> {
        self.shared.copy.list()
    }

    /// How many keys the copy holds.
    pub fn len(&self) -> usize {
        self.shared.copy.len()
    }

    /// True when the copy holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The highest store version the copy has applied.
    pub fn version(&self) -> u64 {
        self.shared.copy.version()
    }

    /// True while the copy cannot reach its store: it serves the last copy,
    /// and catches up (reporting what changed) once the store answers again.
    pub fn is_stale(&self) -> bool {
        self.shared.copy.is_stale()
    }

    /// Resolves once the copy has applied every change up to `version`
    /// (read your own writes: pass a version from `get`, `txn`, ... of a
    /// key under the prefix).
    ///
    /// The copy learns of versions through its prefix's changes only: a
    /// version of a write elsewhere resolves once a change under the prefix
    /// at or past it arrives. Errors: the error that made the copy stop
    /// following, if it did. Cancel-safe; wrap it in `tokio::time::timeout`
    /// to bound the wait.
    pub async fn wait_for(&self, version: u64) -> Result<()> {
        let mut progress = self.shared.copy.progress();
        loop {
            {
                let now = progress.borrow_and_update();
                if let Some(error) = &now.ended {
                    return Err(error.clone());
                }
                if now.version >= version {
                    return Ok(());
                }
            }
            if progress.changed().await.is_err() {
                return Err(Error::malformed("the cache's follower is gone"));
            }
        }
    }

    /// The changes the copy applies from now on, in order, each with the
    /// value it replaced. A subscriber more than a few thousand changes
    /// behind gets [`Error::Lagged`], then its stream ends.
    pub fn changes(&self) -> CacheChanges {
        let receiver = self.shared.copy.subscribe();
        let events = futures::stream::unfold(Some(receiver), |receiver| async move {
            let mut receiver = receiver?;
            match receiver.recv().await {
                Ok(event) => Some((Ok(event), Some(receiver))),
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    Some((Err(Error::Lagged { skipped }), None))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        CacheChanges {
            events: Box::pin(events),
        }
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("prefix", &self.shared.copy.prefix)
            .field("len", &self.len())
            .field("version", &self.version())
            .field("stale", &self.is_stale())
            .finish()
    }
}

/// The changes a [`Cache`] applies:
/// `Stream<Item = Result<CacheEvent>> + Send + Unpin + 'static`. Ends when
/// the cache is dropped, or after an [`Error::Lagged`].
pub struct CacheChanges {
    events: BoxStream<'static, Result<CacheEvent>>,
}

impl Stream for CacheChanges {
    type Item = Result<CacheEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for CacheChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheChanges").finish_non_exhaustive()
    }
}
