//! Watches on etcd: each reads its initial state, then follows a shared
//! upstream stream ([`super::hub`]), or, when it cannot share, a stream of
//! its own ([`WatchStream`]).
//!
//! - The initial state is a range read at revision R; events from R + 1 on
//!   follow. With `after(v)`, the state at v is read (for a later
//!   compaction's difference) and events from v + 1 follow.
//! - A watch joins its target's upstream when the upstream has published
//!   nothing the watch needs (its position is at most the watch's first
//!   revision); otherwise it reads again at the present (a plain watch) or
//!   takes a stream of its own (`after(v)`, which needs history).
//! - A watch that falls [`super::hub`]'s backlog behind leaves its upstream
//!   and goes on alone from its own next revision: nothing is lost.
//! - When etcd has compacted the revisions a stream needs, the watch re-reads
//!   its target and yields the difference with what it had delivered, then
//!   continues after that read.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::broadcast::error::RecvError;

use super::Inner;
use super::client::RangeAt;
use super::hub::{Published, Subscription, key_of};
use super::stream::{Interruption, WatchStream, into_event, key_and_prefix};
use crate::watch::{Known, WatchTarget, known_entry};
use crate::{Error, KvEvent, Result, WatchOptions};

/// Where a watch's events come from.
enum Source {
    Shared(Subscription),
    Alone(WatchStream),
}

/// One watch's position and what it has delivered.
struct EtcdWatch {
    inner: Arc<Inner>,
    target: WatchTarget,
    /// The first revision not yet delivered.
    next_rev: i64,
    /// Key → version of every key this watch has reported present, for the
    /// difference after a compaction.
    known: Known,
    pending: VecDeque<KvEvent>,
    source: Source,
}

/// What the next read of a source brought.
enum Step {
    Events(Vec<KvEvent>),
    Shared(Arc<Vec<KvEvent>>, i64),
    Resync,
    Behind,
}

/// The event stream of one watch, with its initial state read now.
pub(super) async fn open(
    inner: &Arc<Inner>,
    target: WatchTarget,
    options: WatchOptions,
) -> Result<(BoxStream<'static, Result<KvEvent>>, Option<usize>)> {
    let (watch, initial) = match options.after {
        None => {
            let watch = open_now(inner, target).await?;
            let initial = watch.pending.len();
            (watch, Some(initial))
        }
        Some(after) => (open_after(inner, target, after).await?, None),
    };
    let events = futures::stream::unfold(Some(watch), |watch| async move {
        let mut watch = watch?;
        match watch.next_event().await {
            Ok(event) => Some((Ok(event), Some(watch))),
            Err(error) => Some((Err(error), None)),
        }
    });
    Ok((events.boxed(), initial))
}

/// A watch from the present: its state now, then every change.
async fn open_now(inner: &Arc<Inner>, target: WatchTarget) -> Result<EtcdWatch> {
    let (key, prefix) = key_and_prefix(&target);
    let (mut pairs, mut revision) = inner.client.range(key, prefix, 0).await?;
    let subscription = inner.hub.subscribe(inner, &target, revision + 1);
    // The upstream published past our read: read again, at the present,
    // which is at least as far as anything published.
    for _ in 0..3 {
        if subscription.from <= revision + 1 {
            break;
        }
        (pairs, revision) = inner.client.range(key, prefix, 0).await?;
    }
    let source = if subscription.from <= revision + 1 {
        Source::Shared(subscription)
    } else {
        Source::Alone(WatchStream::new(
            inner.clone(),
            target.clone(),
            revision + 1,
        ))
    };
    let mut watch = EtcdWatch::new(inner, target, revision + 1, source);
    for pair in pairs {
        let (key, entry) = known_entry(&pair);
        watch.known.insert(key, entry);
        watch.pending.push_back(KvEvent::Put(pair));
    }
    Ok(watch)
}

/// A watch from after version `after`: the changes since, then every change.
async fn open_after(inner: &Arc<Inner>, target: WatchTarget, after: u64) -> Result<EtcdWatch> {
    let (key, prefix) = key_and_prefix(&target);
    let after = i64::try_from(after)
        .map_err(|_| Error::InvalidArgument(format!("version {after} is too large")))?;
    // What the caller had at `after`, for a later compaction's difference.
    // If etcd compacted past it, deletions since cannot be known: say so
    // rather than leave a silent gap.
    let pairs = match inner.client.range_at(key, prefix, after.max(1)).await? {
        RangeAt::Read(pairs) => pairs,
        RangeAt::Compacted => {
            return Err(Error::Compacted {
                requested: after as u64,
                oldest: oldest_revision(inner, &target, after + 1).await?,
            });
        }
        // `after` is ahead of the store: everything now is known.
        RangeAt::Future => inner.client.range(key, prefix, 0).await?.0,
    };
    let subscription = inner.hub.subscribe(inner, &target, after + 1);
    let source = if subscription.from <= after + 1 {
        Source::Shared(subscription)
    } else {
        // The upstream is past `after`: this watch needs history of its own.
        Source::Alone(WatchStream::new(inner.clone(), target.clone(), after + 1))
    };
    let mut watch = EtcdWatch::new(inner, target, after + 1, source);
    watch.known.extend(pairs.iter().map(known_entry));
    Ok(watch)
}

/// The oldest revision etcd still has, which only a watch from a compacted
/// revision tells (its cancel carries `compact_revision`).
async fn oldest_revision(inner: &Arc<Inner>, target: &WatchTarget, from: i64) -> Result<u64> {
    let mut stream = WatchStream::new(inner.clone(), target.clone(), from);
    match stream.next_batch().await {
        Err(Interruption::Compacted(oldest)) => Ok(u64::try_from(oldest).unwrap_or(0)),
        Err(Interruption::Fatal(error)) => Err(error),
        // Not compacted after all (a race with the read): nothing is older
        // than what it replays.
        Ok(events) => Ok(events
            .first()
            .map_or(0, |e| u64::try_from(e.kv.mod_revision).unwrap_or(0))),
    }
}

fn version_of(event: &KvEvent) -> u64 {
    match event {
        KvEvent::Put(pair) => pair.version,
        KvEvent::Delete { version, .. } => *version,
    }
}

impl EtcdWatch {
    fn new(inner: &Arc<Inner>, target: WatchTarget, next_rev: i64, source: Source) -> Self {
        EtcdWatch {
            inner: inner.clone(),
            target,
            next_rev,
            known: Known::new(),
            pending: VecDeque::new(),
            source,
        }
    }

    async fn next_event(&mut self) -> Result<KvEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            match self.next_step().await? {
                Step::Events(events) => self.record(events),
                Step::Shared(events, next_rev) => {
                    // A directory's upstream also carries other keys.
                    let mine = events.iter().filter(|e| self.target.matches(key_of(e)));
                    let mine: Vec<KvEvent> = mine.cloned().collect();
                    self.record(mine);
                    self.next_rev = self.next_rev.max(next_rev);
                }
                Step::Resync => self.resync().await?,
                Step::Behind => {
                    tracing::debug!(
                        next_rev = self.next_rev,
                        "etcd watch fell behind its shared stream; going on alone"
                    );
                    self.source = Source::Alone(WatchStream::new(
                        self.inner.clone(),
                        self.target.clone(),
                        self.next_rev,
                    ));
                }
            }
        }
    }

    async fn next_step(&mut self) -> Result<Step> {
        match &mut self.source {
            Source::Alone(stream) => match stream.next_batch().await {
                Ok(batch) => {
                    let events = batch.into_iter().map(into_event).collect::<Result<_>>()?;
                    Ok(Step::Events(events))
                }
                Err(Interruption::Compacted(_)) => Ok(Step::Resync),
                Err(Interruption::Fatal(error)) => Err(error),
            },
            Source::Shared(subscription) => match subscription.rx.recv().await {
                Ok(Published::Events { events, next_rev }) => Ok(Step::Shared(events, next_rev)),
                Ok(Published::Resync) => Ok(Step::Resync),
                Ok(Published::Failed(error)) => Err((*error).clone()),
                // Behind by more than the backlog, or (never while this
                // watch is a member) an upstream that ended.
                Err(RecvError::Lagged(_) | RecvError::Closed) => Ok(Step::Behind),
            },
        }
    }

    /// Queues the events of a batch not delivered already (one revision may
    /// carry several events), updating what this watch knows.
    fn record(&mut self, events: Vec<KvEvent>) {
        let first_new = self.next_rev;
        for event in events {
            let version = version_of(&event) as i64;
            if version < first_new {
                continue; // delivered before a resume, or in the initial read
            }
            self.next_rev = self.next_rev.max(version + 1);
            match &event {
                KvEvent::Put(pair) => {
                    let (key, entry) = known_entry(pair);
                    self.known.insert(key, entry);
                }
                KvEvent::Delete { key, .. } => {
                    self.known.remove(key);
                }
            }
            self.pending.push_back(event);
        }
    }

    /// After a compaction: re-reads the target and queues the difference
    /// with what this watch has delivered, then continues after that read.
    async fn resync(&mut self) -> Result<()> {
        let (key, prefix) = key_and_prefix(&self.target);
        let (pairs, revision) = self.inner.client.range(key, prefix, 0).await?;
        tracing::info!(
            next_rev = self.next_rev,
            revision,
            "etcd compacted the watch's history; resyncing"
        );
        let deleted_at = u64::try_from(revision).unwrap_or(0).max(1);
        let events = crate::watch::difference(&mut self.known, &pairs, deleted_at);
        self.pending.extend(events);
        self.next_rev = self.next_rev.max(revision + 1);
        if let Source::Alone(stream) = &mut self.source {
            stream.restart_at(revision + 1);
        }
        Ok(())
    }
}
