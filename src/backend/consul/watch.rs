//! Watches on Consul: blocking queries, shared.
//!
//! Every watch on the same key or prefix in one store shares one *upstream*:
//! a task that runs Consul's blocking query loop and publishes each new
//! result (a sorted snapshot) on a `tokio::sync::watch` channel, which keeps
//! only the latest value — Consul's own semantics, since a blocking query
//! coalesces changes. At most [`MAX_LONG_POLLS`] queries are in flight per
//! store, abandoned ones included (see [`super::long_polls`]), so a store
//! stays far below Consul's 200 connections per client.
//! Once a store has [`GROUP_AFTER`] upstreams, a new watch on a key shares
//! the upstream of the key's directory (`a/b/` for `a/b/c`) instead of
//! starting its own, so thousands of key watches under a few directories
//! need only a few blocking queries (each change re-lists the directory).
//!
//! Each watch (a *subscriber*) reads its own initial state, then turns every
//! snapshot into events by diffing it with what it has delivered: a `Put` per
//! new or changed key, a `Delete` per vanished key, in version order. A lost
//! connection only delays the next snapshot: the diff is state-based, so
//! nothing is lost or repeated.
//!
//! The upstream follows Consul's rules for blocking queries: a first read
//! without `index`, never `index=0` afterwards (floored at 1), reset when the
//! index goes backwards, a return is not proof of a change (an unchanged
//! snapshot is not published, and throttled), and jittered
//! backoff on errors. After a failed query the next read is plain (no
//! index): an agent that came back empty would otherwise hold a query on
//! the old, higher index for its whole wait.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Inner;
use super::client::Listing;
use super::long_polls::{LongPolls, MAX_LONG_POLLS, MAX_WAIT};
use crate::backoff::Backoff;
use crate::watch::{Known, WatchTarget, known_entry};
use crate::{Error, KvEvent, KvPair, Result, WatchOptions};

/// With this many upstreams, new key watches share their directory's.
const GROUP_AFTER: usize = MAX_LONG_POLLS / 2;
/// How long one blocking query waits when other targets are waiting for a
/// slot (at most; uncontended, it waits `Config::stall_timeout`, at most
/// [`MAX_WAIT`]).
const SHORT_WAIT: Duration = Duration::from_secs(10);
/// After a poll that brought no change, the next one starts at least this
/// long after it (Consul's advice against busy loops on a hot index); after a
/// change, the next poll starts at once.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// One result of a blocking query.
#[derive(Debug)]
struct Snapshot {
    /// Bumped when the index went backwards: indexes of different generations
    /// cannot be compared.
    generation: u64,
    index: u64,
    /// Sorted by key.
    pairs: Vec<KvPair>,
}

#[derive(Debug, Clone)]
enum Published {
    Nothing,
    Snapshot(Arc<Snapshot>),
    /// The upstream hit an error it cannot recover from; it has ended.
    Failed(Arc<Error>),
}

/// The upstreams of one store, by target.
#[derive(Debug, Default)]
pub(super) struct Hub {
    upstreams: Mutex<HashMap<WatchTarget, watch::Sender<Published>>>,
    /// Shared with the locks' blocking queries.
    pub(super) long_polls: LongPolls,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WatchTarget, watch::Sender<Published>>> {
        self.upstreams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes to the upstream that serves `target` (its own, or, for a
    /// key, its directory's), starting it if there is none.
    fn subscribe(&self, inner: &Arc<Inner>, target: &WatchTarget) -> watch::Receiver<Published> {
        let mut upstreams = self.lock();
        if let Some(tx) = upstreams.get(target) {
            return tx.subscribe();
        }
        let directory = match target {
            WatchTarget::Key(key) => key
                .rfind('/')
                .map(|end| WatchTarget::Prefix(key[..=end].to_owned())),
            WatchTarget::Prefix(_) => None,
        };
        if let Some(directory) = directory {
            if let Some(tx) = upstreams.get(&directory) {
                return tx.subscribe();
            }
            if upstreams.len() >= GROUP_AFTER {
                let (tx, rx) = watch::channel(Published::Nothing);
                upstreams.insert(directory.clone(), tx.clone());
                tokio::spawn(run_upstream(inner.clone(), directory, tx));
                return rx;
            }
        }
        let target = target.clone();
        let (tx, rx) = watch::channel(Published::Nothing);
        upstreams.insert(target.clone(), tx.clone());
        tokio::spawn(run_upstream(inner.clone(), target, tx));
        rx
    }

    /// Forgets `tx` if nobody listens any more; true if it was forgotten.
    fn retire(&self, target: &WatchTarget, tx: &watch::Sender<Published>) -> bool {
        let mut upstreams = self.lock();
        if tx.receiver_count() > 0 {
            return false;
        }
        if upstreams.get(target).is_some_and(|t| t.same_channel(tx)) {
            upstreams.remove(target);
        }
        true
    }
}

fn read_args(target: &WatchTarget) -> (&str, bool) {
    match target {
        WatchTarget::Key(key) => (key, false),
        WatchTarget::Prefix(prefix) => (prefix, true),
    }
}

fn into_pairs(listing: Listing, target: &WatchTarget) -> Result<Vec<KvPair>> {
    listing.entries.into_sorted_pairs(|found| match target {
        WatchTarget::Key(key) => found == key,
        WatchTarget::Prefix(prefix) => found.starts_with(prefix.as_str()),
    })
}

/// Errors no retry can fix: they end the watch.
fn is_fatal(error: &Error) -> bool {
    matches!(
        error,
        Error::PermissionDenied(_) | Error::InvalidKey { .. } | Error::InvalidArgument(_)
    )
}

/// The blocking-query loop of one target; ends when nobody listens.
async fn run_upstream(inner: Arc<Inner>, target: WatchTarget, tx: watch::Sender<Published>) {
    let (key, recurse) = read_args(&target);
    let mut index = 0u64;
    let mut generation = 0u64;
    let mut published: Option<Arc<Snapshot>> = None;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(15));
    let mut next_poll = Instant::now();
    loop {
        // Never start a query nobody will read: abandoned, it would hold a
        // connection at Consul until its wait ends.
        if tx.is_closed() && inner.hub.retire(&target, &tx) {
            return;
        }
        let attempt = async {
            // tokio's timer ticks by the millisecond: a deadline already
            // passed must not wait for the next tick.
            if next_poll > Instant::now() {
                tokio::time::sleep_until(next_poll).await;
            }
            let mut slot = inner.hub.long_polls.slot().await;
            // A return with no change is throttled (below); a change is
            // followed by the next query at once, for the next change's sake.
            next_poll = Instant::now() + MIN_POLL_INTERVAL;
            let wait = if inner.hub.long_polls.contended() {
                SHORT_WAIT.min(inner.config.stall_timeout)
            } else {
                MAX_WAIT.min(inner.config.stall_timeout)
            };
            let block = (index > 0).then_some((index, wait));
            let parks_for = block.map(|(_, wait)| wait);
            slot.run(parks_for, inner.client.read(key, recurse, block))
                .await
        };
        let result = tokio::select! {
            biased;
            _ = tx.closed() => {
                if inner.hub.retire(&target, &tx) {
                    return;
                }
                continue;
            }
            result = attempt => result,
        };
        match result.and_then(|listing| Ok((listing.index, into_pairs(listing, &target)?))) {
            Ok((new_index, pairs)) => {
                backoff.reset();
                let new_index = new_index.max(1);
                if new_index < index {
                    // Consul's index went backwards (snapshot restore,
                    // tombstone reaping): start over with a fresh read.
                    tracing::debug!(index, new_index, "consul index went backwards; resetting");
                    generation += 1;
                    index = 0;
                } else {
                    index = new_index;
                }
                let unchanged = published
                    .as_ref()
                    .is_some_and(|p| p.generation == generation && p.pairs == pairs);
                if !unchanged {
                    next_poll = Instant::now();
                    let snapshot = Arc::new(Snapshot {
                        generation,
                        index: new_index,
                        pairs,
                    });
                    published = Some(snapshot.clone());
                    tx.send_replace(Published::Snapshot(snapshot));
                }
            }
            Err(error) if is_fatal(&error) => {
                tx.send_replace(Published::Failed(Arc::new(error)));
                inner.hub.retire(&target, &tx);
                // Stay registered only while someone may still read the failure.
                tx.closed().await;
                inner.hub.retire(&target, &tx);
                return;
            }
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(%error, ?delay, index, "consul watch query failed; re-reading");
                next_poll = Instant::now() + delay;
                // The agent may have come back empty or restored from an
                // older snapshot, its index far below ours: a blocking
                // query on our index would then sleep its whole wait. The
                // next read is plain, and its snapshot a new generation
                // that each watch diffs against what it delivered.
                if index > 0 {
                    index = 0;
                    generation += 1;
                }
            }
        }
    }
}

/// What one watch has delivered, and what it has still to yield.
struct Subscriber {
    inner: Arc<Inner>,
    target: WatchTarget,
    options: WatchOptions,
    rx: Option<watch::Receiver<Published>>,
    /// Key → version of every key this watch has reported present.
    known: Known,
    /// The generation and index of the state `known` reflects.
    seen: (u64, u64),
    pending: VecDeque<KvEvent>,
}

/// The event stream of one watch, with its initial state read now.
pub(super) async fn open(
    inner: &Arc<Inner>,
    target: WatchTarget,
    options: WatchOptions,
) -> Result<(BoxStream<'static, Result<KvEvent>>, Option<usize>)> {
    let initial_wanted = options.after.is_none();
    let mut subscriber = Subscriber {
        inner: inner.clone(),
        target,
        options,
        rx: None,
        known: Known::new(),
        seen: (0, 0),
        pending: VecDeque::new(),
    };
    subscriber.start().await?;
    let initial = initial_wanted.then_some(subscriber.pending.len());
    let events = futures::stream::unfold(Some(subscriber), |subscriber| async move {
        let mut subscriber = subscriber?;
        match subscriber.next_event().await {
            Ok(event) => Some((Ok(event), Some(subscriber))),
            Err(error) => Some((Err(error), None)),
        }
    });
    Ok((events.boxed(), initial))
}

impl Subscriber {
    async fn next_event(&mut self) -> Result<KvEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            let Some(rx) = self.rx.as_mut() else {
                return Err(Error::Unreachable {
                    message: "the Consul watch was never started".into(),
                    source: None,
                });
            };
            if rx.changed().await.is_err() {
                return Err(Error::Unreachable {
                    message: "the Consul watch upstream ended".into(),
                    source: None,
                });
            }
            let published = rx.borrow_and_update().clone();
            match published {
                Published::Nothing => {}
                Published::Snapshot(snapshot) => self.apply(&snapshot),
                Published::Failed(error) => return Err((*error).clone()),
            }
        }
    }

    /// Reads the initial state, then joins the target's upstream.
    async fn start(&mut self) -> Result<()> {
        let (key, recurse) = read_args(&self.target);
        let listing = self.inner.client.read(key, recurse, None).await?;
        let index = listing.index;
        let pairs = into_pairs(listing, &self.target)?;
        let mut fresh = Vec::new();
        for pair in pairs {
            match self.options.after {
                Some(after) if pair.version <= after => {
                    let (key, entry) = known_entry(&pair);
                    self.known.insert(key, entry);
                }
                _ => {
                    let (key, entry) = known_entry(&pair);
                    self.known.insert(key, entry);
                    fresh.push(pair);
                }
            }
        }
        if self.options.after.is_some() {
            fresh.sort_by_key(|p| p.version);
        }
        self.pending.extend(fresh.into_iter().map(KvEvent::Put));
        let rx = self.inner.hub.subscribe(&self.inner, &self.target);
        let generation = match &*rx.borrow() {
            Published::Snapshot(s) => s.generation,
            _ => 0,
        };
        self.seen = (generation, index);
        self.rx = Some(rx);
        Ok(())
    }

    /// Queues the difference between what this watch reported and `snapshot`.
    fn apply(&mut self, snapshot: &Snapshot) {
        let (generation, index) = self.seen;
        if snapshot.generation == generation && snapshot.index < index {
            return; // older than what this watch already reported
        }
        self.seen = (snapshot.generation, snapshot.index);
        // A key watch may be served by its directory's upstream: only its key
        // counts (the snapshot is sorted by key).
        let pairs = match &self.target {
            WatchTarget::Key(key) => {
                let found = snapshot.pairs.binary_search_by(|p| p.key.as_str().cmp(key));
                found.map_or(&[][..], |i| &snapshot.pairs[i..=i])
            }
            WatchTarget::Prefix(_) => &snapshot.pairs[..],
        };
        let events = crate::watch::difference(&mut self.known, pairs, snapshot.index);
        self.pending.extend(events);
    }
}
