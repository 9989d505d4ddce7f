//! The [`Watch`] stream and the cancellation registry every backend shares.
//!
//! A backend builds the stream of events; [`WatchRegistry::register`] files it
//! under its key or prefix so that `cancel_watch` / `cancel_watch_range` can
//! end it, and [`Watch`] ties the two together: it ends (returns `None`) as
//! soon as its token is cancelled, and un-files itself when dropped.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures::Stream;
use futures::stream::BoxStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::{KvEvent, Result};

mod delivered;
mod difference;
pub(crate) use delivered::Delivered;
pub(crate) use difference::{Known, difference, known_entry};

/// What a watch is filed under: one exact key, or one prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum WatchTarget {
    Key(String),
    Prefix(String),
}

impl WatchTarget {
    /// True when a change of `key` concerns this watch.
    pub(crate) fn matches(&self, key: &str) -> bool {
        match self {
            WatchTarget::Key(k) => k == key,
            WatchTarget::Prefix(p) => key.starts_with(p.as_str()),
        }
    }
}

/// How one watch is ended: the token for tasks that `select!` on it, and a
/// plain flag that a stream can check on every poll without the token's lock.
#[derive(Debug, Default)]
struct WatchCancel {
    flag: AtomicBool,
    token: CancellationToken,
}

impl WatchCancel {
    fn cancel(&self) {
        self.flag.store(true, Ordering::Release);
        self.token.cancel();
    }

    fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
}

#[derive(Default)]
struct RegistryMap {
    next_id: u64,
    live: HashMap<WatchTarget, HashMap<u64, Arc<WatchCancel>>>,
}

/// Maps each key and prefix to the cancellation tokens of its live watches.
///
/// Cloning shares the registry; a store and its clones hold one.
#[derive(Clone, Default)]
pub(crate) struct WatchRegistry {
    map: Arc<Mutex<RegistryMap>>,
}

impl fmt::Debug for WatchRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchRegistry")
            .field("targets", &self.lock().live.len())
            .finish()
    }
}

impl WatchRegistry {
    fn lock(&self) -> MutexGuard<'_, RegistryMap> {
        // The map is valid after any panic (every change is one insert or
        // remove), so a poisoned lock is still safe to use.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Files a new watch under `target`; the returned registration carries its
    /// token and removes the entry when dropped.
    pub(crate) fn register(&self, target: WatchTarget) -> Registration {
        let cancel = Arc::new(WatchCancel::default());
        let mut map = self.lock();
        let id = map.next_id;
        map.next_id += 1;
        map.live
            .entry(target.clone())
            .or_default()
            .insert(id, cancel.clone());
        Registration {
            registry: self.clone(),
            target,
            id,
            cancel,
        }
    }

    /// Ends every watch filed under exactly `target`; returns how many.
    pub(crate) fn cancel(&self, target: &WatchTarget) -> usize {
        let removed = self.lock().live.remove(target);
        let watches = removed.unwrap_or_default();
        for cancel in watches.values() {
            cancel.cancel();
        }
        watches.len()
    }

    /// Number of live watches (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().live.values().map(HashMap::len).sum()
    }

    fn remove(&self, target: &WatchTarget, id: u64) {
        let mut map = self.lock();
        if let Some(watches) = map.live.get_mut(target) {
            watches.remove(&id);
            if watches.is_empty() {
                map.live.remove(target);
            }
        }
    }
}

/// A watch's entry in the registry; removes it when dropped.
pub(crate) struct Registration {
    registry: WatchRegistry,
    target: WatchTarget,
    id: u64,
    cancel: Arc<WatchCancel>,
}

impl Registration {
    /// The token that `cancel_watch` / `cancel_watch_range` cancel. A backend
    /// whose stream runs in a task of its own selects on it to close its
    /// server-side request at once.
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.cancel.token
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.remove(&self.target, self.id);
    }
}

/// A live watch: a `Stream<Item = Result<KvEvent>> + Send + Unpin + 'static`.
///
/// Dropping it, [`Store::cancel_watch`](crate::Store::cancel_watch) or
/// [`Store::cancel_watch_range`](crate::Store::cancel_watch_range) ends it: the
/// stream then returns `None` (no error) and its server-side request is closed.
/// After an `Err` item the stream ends.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvmesh::Result<()> {
/// use futures::StreamExt;
/// use kvmesh::{Bytes, KvEvent, WatchOptions};
///
/// let store = kvmesh::connect("memory://").await?;
/// let mut watch = store.watch_range("jobs/", WatchOptions::default()).await?;
/// store.put("jobs/1", Bytes::from("queued")).await?;
/// match watch.next().await {
///     Some(Ok(KvEvent::Put(pair))) => assert_eq!(pair.key, "jobs/1"),
///     other => panic!("unexpected: {other:?}"),
/// }
/// assert_eq!(store.cancel_watch_range("jobs/"), 1);
/// assert!(watch.next().await.is_none());
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping a Watch ends it"]
pub struct Watch {
    events: Option<BoxStream<'static, Result<KvEvent>>>,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The waker `cancelled` was last polled with: it is polled again only
    /// when the task driving this watch changes.
    cancel_waker: Option<Waker>,
    registration: Registration,
    /// How many of the first events are the initial state (a `Put` per key
    /// as of one moment), where the backend says so.
    initial_state: Option<usize>,
}

impl Watch {
    /// Wraps a backend's event stream; `registration` ends it on cancel.
    pub(crate) fn new(
        events: BoxStream<'static, Result<KvEvent>>,
        registration: Registration,
    ) -> Self {
        Watch {
            events: Some(events),
            cancelled: Box::pin(registration.token().clone().cancelled_owned()),
            cancel_waker: None,
            registration,
            initial_state: None,
        }
    }

    /// Says that the first `events` events are the initial state: every key
    /// as of one moment, before any change (a watch without `after`).
    pub(crate) fn with_initial_state(mut self, events: Option<usize>) -> Self {
        self.initial_state = events;
        self
    }

    /// How many of the first events are the initial state, if the backend
    /// said (`None` for a watch with `after`, or a store outside this crate).
    pub(crate) fn initial_state(&self) -> Option<usize> {
        self.initial_state
    }
}

impl Watch {
    /// The same watch, each event passed through `f` (same registration, so
    /// the same cancellation).
    pub(crate) fn map_events(
        mut self,
        f: impl FnMut(KvEvent) -> KvEvent + Send + 'static,
    ) -> Watch {
        use futures::StreamExt as _;
        let mut f = f;
        self.events = self
            .events
            .take()
            .map(|events| events.map(move |item| item.map(&mut f)).boxed());
        self
    }

    /// Ends the stream. Dropping the backend stream closes its server-side
    /// request now, not when the caller gets around to dropping the Watch.
    fn end(&mut self) -> Poll<Option<Result<KvEvent>>> {
        self.events = None;
        Poll::Ready(None)
    }
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("target", &self.registration.target)
            .field("ended", &self.events.is_none())
            .finish()
    }
}

impl Stream for Watch {
    type Item = Result<KvEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(events) = this.events.as_mut() else {
            return Poll::Ready(None);
        };
        // A cheap flag check on every poll; the token (which takes a lock) is
        // polled only when the stream goes idle under a new waker.
        if this.registration.cancel.is_cancelled() {
            return this.end();
        }
        match events.as_mut().poll_next(cx) {
            Poll::Ready(Some(Err(e))) => {
                this.events = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => this.end(),
            Poll::Ready(Some(Ok(event))) => Poll::Ready(Some(Ok(event))),
            Poll::Pending => {
                let registered =
                    (this.cancel_waker.as_ref()).is_some_and(|waker| waker.will_wake(cx.waker()));
                if !registered {
                    if this.cancelled.as_mut().poll(cx).is_ready() {
                        return this.end();
                    }
                    this.cancel_waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn pending_watch(registry: &WatchRegistry, target: WatchTarget) -> Watch {
        Watch::new(
            futures::stream::pending().boxed(),
            registry.register(target),
        )
    }

    #[tokio::test]
    async fn cancel_ends_exactly_the_watches_on_that_target() {
        let registry = WatchRegistry::default();
        let mut a1 = pending_watch(&registry, WatchTarget::Key("a".into()));
        let mut a2 = pending_watch(&registry, WatchTarget::Key("a".into()));
        let mut prefix_a = pending_watch(&registry, WatchTarget::Prefix("a".into()));
        assert_eq!(registry.cancel(&WatchTarget::Key("a".into())), 2);
        assert!(a1.next().await.is_none());
        assert!(a2.next().await.is_none());
        let still_live =
            tokio::time::timeout(std::time::Duration::from_millis(20), prefix_a.next());
        assert!(still_live.await.is_err(), "the prefix watch must not end");
        assert_eq!(registry.cancel(&WatchTarget::Key("a".into())), 0);
    }

    #[test]
    fn dropping_a_watch_removes_its_entry() {
        let registry = WatchRegistry::default();
        for i in 0..10_000 {
            let _w = pending_watch(&registry, WatchTarget::Prefix(format!("p{}", i % 7)));
        }
        assert_eq!(registry.len(), 0);
        assert!(registry.lock().live.is_empty());
    }
}
