//! Watches on etcd share streams.
//!
//! Every watch on the same key or prefix in one store shares one *upstream*:
//! a task that runs one `/v3/watch` stream ([`WatchStream`]) and publishes
//! its events, decoded once, on a broadcast channel. Once a store has
//! [`GROUP_AFTER`] upstreams, a new watch on a key shares the upstream of the
//! key's directory (`a/b/` for `a/b/c`), which routes each event to the
//! channel of its key only, so 10,000 key watches under a few directories
//! need a few connections, not 10,000, and none reads the others' events.
//!
//! An upstream's position (`next_rev`, the first revision it has not
//! published) changes only together with a publication, under one lock, so a
//! watch that subscribes learns exactly from which revision on it receives
//! everything. The last watch to leave ends the upstream and its connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, broadcast};

use super::Inner;
use super::stream::{Interruption, WatchStream, into_event, key_and_prefix};
use crate::backoff::Backoff;
use crate::watch::WatchTarget;
use crate::{Error, KvEvent, Result};

/// With this many upstreams, new key watches share their directory's.
const GROUP_AFTER: usize = 32;
/// Publications a watch may fall behind before it leaves its upstream and
/// goes on alone from where it was (nothing is lost either way).
const BACKLOG: usize = 1024;
/// The same for a key watch served by its directory's upstream, counting
/// only its own key's changes (a channel per key: kept small).
const KEY_BACKLOG: usize = 16;

/// What an upstream publishes.
#[derive(Debug, Clone)]
pub(super) enum Published {
    /// The next events of the upstream's target, in revision order; every
    /// event below `next_rev` has now been published.
    Events {
        events: Arc<Vec<KvEvent>>,
        next_rev: i64,
    },
    /// etcd compacted revisions the upstream needed: it skipped ahead, so
    /// each watch re-reads its target and reports the difference.
    Resync,
    /// The upstream ended on an error no retry can fix.
    Failed(Arc<Error>),
}

#[derive(Debug)]
struct Upstream {
    target: WatchTarget,
    /// For the watches of `target` itself.
    tx: broadcast::Sender<Published>,
    state: Mutex<Routes>,
    members: AtomicUsize,
    left: Notify,
}

#[derive(Debug)]
struct Routes {
    /// The first revision not yet published: changed only while publishing.
    next_rev: i64,
    /// For key watches served by this (directory) upstream, by key.
    by_key: HashMap<String, broadcast::Sender<Published>>,
}

impl Upstream {
    fn state(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes `events` to the target's watches and each event to its
    /// key's watches, moving the position to `next_rev`.
    fn publish_events(&self, events: Vec<KvEvent>, next_rev: i64) {
        let mut state = self.state();
        if !state.by_key.is_empty() {
            let mut per_key: HashMap<&str, Vec<KvEvent>> = HashMap::new();
            for event in &events {
                if state.by_key.contains_key(key_of(event)) {
                    per_key
                        .entry(key_of(event))
                        .or_default()
                        .push(event.clone());
                }
            }
            for (key, mine) in per_key {
                if let Some(tx) = state.by_key.get(key) {
                    let _ = tx.send(Published::Events {
                        events: Arc::new(mine),
                        next_rev,
                    });
                }
            }
        }
        if self.tx.receiver_count() > 0 {
            let events = Arc::new(events);
            // No receiver is fine: the upstream is about to be retired.
            let _ = self.tx.send(Published::Events { events, next_rev });
        }
        state.next_rev = next_rev;
    }

    /// Publishes `item` to every watch, moving the position to `next_rev`.
    fn publish_to_all(&self, item: Published, next_rev: i64) {
        let mut state = self.state();
        for tx in state.by_key.values() {
            let _ = tx.send(item.clone());
        }
        let _ = self.tx.send(item);
        state.next_rev = next_rev;
    }
}

/// The key an event is about.
pub(super) fn key_of(event: &KvEvent) -> &str {
    match event {
        KvEvent::Put(pair) => &pair.key,
        KvEvent::Delete { key, .. } => key,
    }
}

/// The upstreams of one store, by target.
#[derive(Debug, Default)]
pub(super) struct Hub {
    upstreams: Mutex<HashMap<WatchTarget, Arc<Upstream>>>,
}

/// A watch's place on an upstream; leaving is dropping it.
#[derive(Debug)]
pub(super) struct Subscription {
    pub(super) rx: broadcast::Receiver<Published>,
    /// Every event from this revision on arrives on `rx`.
    pub(super) from: i64,
    upstream: Arc<Upstream>,
    /// The key whose route this watch reads, if not the upstream's target.
    route: Option<String>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(key) = &self.route {
            let mut state = self.upstream.state();
            // This watch's receiver is still alive: 1 means it was the last.
            if state
                .by_key
                .get(key)
                .is_some_and(|tx| tx.receiver_count() <= 1)
            {
                state.by_key.remove(key);
            }
        }
        if self.upstream.members.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.upstream.left.notify_one();
        }
    }
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WatchTarget, Arc<Upstream>>> {
        self.upstreams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes to the upstream that serves `target` (its own, or, for a
    /// key, its directory's), starting one at `start` if there is none.
    pub(super) fn subscribe(
        &self,
        inner: &Arc<Inner>,
        target: &WatchTarget,
        start: i64,
    ) -> Subscription {
        let mut upstreams = self.lock();
        let directory = match target {
            WatchTarget::Key(key) => key
                .rfind('/')
                .map(|end| WatchTarget::Prefix(key[..=end].to_owned())),
            WatchTarget::Prefix(_) => None,
        };
        let existing = upstreams
            .get(target)
            .or_else(|| directory.as_ref().and_then(|d| upstreams.get(d)));
        if let Some(upstream) = existing {
            return join(upstream.clone(), target);
        }
        let serves = match directory {
            Some(directory) if upstreams.len() >= GROUP_AFTER => directory,
            _ => target.clone(),
        };
        let upstream = Arc::new(Upstream {
            target: serves.clone(),
            tx: broadcast::channel(BACKLOG).0,
            state: Mutex::new(Routes {
                next_rev: start,
                by_key: HashMap::new(),
            }),
            members: AtomicUsize::new(0),
            left: Notify::new(),
        });
        upstreams.insert(serves, upstream.clone());
        tokio::spawn(run(inner.clone(), upstream.clone()));
        join(upstream, target)
    }

    /// Forgets `upstream` if nobody listens any more; true if it was.
    fn retire(&self, upstream: &Arc<Upstream>) -> bool {
        let mut upstreams = self.lock();
        if upstream.members.load(Ordering::Acquire) > 0 {
            return false;
        }
        self.forget(&mut upstreams, upstream);
        true
    }

    fn forget(
        &self,
        upstreams: &mut HashMap<WatchTarget, Arc<Upstream>>,
        upstream: &Arc<Upstream>,
    ) {
        if upstreams
            .get(&upstream.target)
            .is_some_and(|u| Arc::ptr_eq(u, upstream))
        {
            upstreams.remove(&upstream.target);
        }
    }
}

fn join(upstream: Arc<Upstream>, target: &WatchTarget) -> Subscription {
    upstream.members.fetch_add(1, Ordering::AcqRel);
    let mut state = upstream.state();
    let (rx, route) = match target {
        WatchTarget::Key(key) if *target != upstream.target => {
            let tx = state
                .by_key
                .entry(key.clone())
                .or_insert_with(|| broadcast::channel(KEY_BACKLOG).0);
            (tx.subscribe(), Some(key.clone()))
        }
        _ => (upstream.tx.subscribe(), None),
    };
    let from = state.next_rev;
    drop(state);
    Subscription {
        rx,
        from,
        upstream,
        route,
    }
}

/// The stream loop of one upstream; ends when its last watch leaves.
async fn run(inner: Arc<Inner>, upstream: Arc<Upstream>) {
    let start = upstream.state().next_rev;
    let mut stream = WatchStream::new(inner.clone(), upstream.target.clone(), start);
    loop {
        let step = tokio::select! {
            biased;
            _ = upstream.left.notified() => {
                if inner.hub.retire(&upstream) {
                    return;
                }
                continue;
            }
            step = stream.next_batch() => step,
        };
        let failure = match step {
            Ok(batch) => match batch
                .into_iter()
                .map(into_event)
                .collect::<Result<Vec<_>>>()
            {
                Ok(events) => {
                    upstream.publish_events(events, stream.next_rev());
                    continue;
                }
                Err(error) => error,
            },
            Err(Interruption::Compacted(_)) => match current_revision(&inner, &upstream).await {
                Ok(revision) => {
                    tracing::info!(
                        revision,
                        "etcd compacted a shared watch's history; resyncing"
                    );
                    stream.restart_at(revision + 1);
                    upstream.publish_to_all(Published::Resync, revision + 1);
                    continue;
                }
                Err(error) => error,
            },
            Err(Interruption::Fatal(error)) => error,
        };
        // New watches of this target start a new upstream; these end.
        let mut upstreams = inner.hub.lock();
        inner.hub.forget(&mut upstreams, &upstream);
        drop(upstreams);
        let next_rev = stream.next_rev();
        upstream.publish_to_all(Published::Failed(Arc::new(failure)), next_rev);
        return;
    }
}

/// The store's revision now, retried while etcd is unreachable.
async fn current_revision(inner: &Arc<Inner>, upstream: &Upstream) -> Result<i64> {
    // Any read answers with the store's revision: read the bare key or
    // prefix, not the whole range.
    let (key, _) = key_and_prefix(&upstream.target);
    let mut backoff = Backoff::new(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(10),
    );
    loop {
        match inner.client.range_raw(key).await {
            Ok((_, revision)) => return Ok(revision),
            Err(error) if error.is_retryable() => {
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(error) => return Err(error),
        }
    }
}
