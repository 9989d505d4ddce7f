//! Watches on ZooKeeper: one persistent watch per key or prefix per store,
//! shared by every watch of it, as the other backends share theirs.
//!
//! The *upstream* of a target adds a persistent watch on ZooKeeper (on the
//! key's node; recursive on the node a prefix's keys lie under) and, after
//! each notification, reads the target's state again ([`super::range`]:
//! as of one moment) and publishes it on a `tokio::sync::watch` channel,
//! which keeps only the latest: like Consul, a watch delivers the latest
//! state, not every change. After a lost connection (ZooKeeper may drop
//! notifications then) or on a new session (the watch is added again), it
//! reads again. Each *subscriber* turns every newer state into events by
//! diffing it with what it has delivered ([`crate::watch::difference`]), so
//! nothing is lost or repeated; a delete carries the marker's version where
//! the marker stands, else a zxid at or above the delete.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::watch;
use zookeeper_client as zk;

use super::ZooKeeperStore;
use super::nodes::{is_deleted_key, pair_of, version_of};
use super::paths::{node_path, range_start};
use super::range::{Snapshot, nearest_pzxid, read_snapshot};
use super::session::{Repeat, Session};
use crate::backoff::Backoff;
use crate::watch::{Known, WatchTarget, known_entry};
use crate::{Error, KvEvent, Result, WatchOptions};

#[derive(Debug, Clone)]
enum Published {
    Nothing,
    State(Arc<Snapshot>),
    /// The upstream cannot go on (refused credentials); it has ended.
    Failed(Arc<Error>),
}

/// The upstreams of one store, by target.
#[derive(Debug, Default)]
pub(super) struct Hub {
    upstreams: Mutex<HashMap<WatchTarget, watch::Sender<Published>>>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WatchTarget, watch::Sender<Published>>> {
        self.upstreams.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn subscribe(
        &self,
        store: &ZooKeeperStore,
        target: &WatchTarget,
    ) -> watch::Receiver<Published> {
        let mut upstreams = self.lock();
        if let Some(tx) = upstreams.get(target) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(Published::Nothing);
        upstreams.insert(target.clone(), tx.clone());
        let upstream = Upstream {
            session: store.session.clone(),
            hub: store.hub.clone(),
            root: store.root.clone(),
            target: target.clone(),
            tx,
        };
        tokio::spawn(upstream.run());
        rx
    }

    /// Forgets `tx` if nobody listens any more; true if it was forgotten.
    fn retire(&self, target: &WatchTarget, tx: &watch::Sender<Published>) -> bool {
        let mut upstreams = self.lock();
        if !tx.is_closed() {
            return false;
        }
        if upstreams.get(target).is_some_and(|t| t.same_channel(tx)) {
            upstreams.remove(target);
        }
        true
    }
}

/// The state of `target` now.
async fn read_target(session: &Session, root: &str, target: &WatchTarget) -> Result<Snapshot> {
    match target {
        WatchTarget::Prefix(prefix) => read_snapshot(session, root, prefix).await,
        WatchTarget::Key(key) => {
            let path = node_path(root, key);
            session
                .run("zookeeper watch", Repeat::Safe, |client| {
                    let path = path.clone();
                    async move { read_key(&client, key, &path).await }
                })
                .await
        }
    }
}

async fn read_key(
    client: &zk::Client,
    key: &str,
    path: &str,
) -> std::result::Result<Snapshot, zk::Error> {
    let mut snapshot = Snapshot {
        pairs: Vec::new(),
        deleted: HashMap::new(),
        zxid: 0,
    };
    match client.get_data(path).await {
        Ok((data, stat)) => {
            snapshot.zxid = u64::try_from(stat.mzxid.max(stat.pzxid)).unwrap_or(0);
            if is_deleted_key(&data, &stat) {
                snapshot.deleted.insert(key.to_owned(), version_of(&stat)?);
            } else if let Some(pair) = pair_of(key, data, &stat)? {
                snapshot.pairs.push(pair);
            }
        }
        Err(zk::Error::NoNode) => snapshot.zxid = nearest_pzxid(client, path).await?,
        Err(error) => return Err(error),
    }
    Ok(snapshot)
}

/// The node and mode ZooKeeper watches for `target`.
fn watched(root: &str, target: &WatchTarget) -> (String, zk::AddWatchMode) {
    match target {
        WatchTarget::Key(key) => (node_path(root, key), zk::AddWatchMode::Persistent),
        WatchTarget::Prefix(prefix) => (
            range_start(root, prefix).0,
            zk::AddWatchMode::PersistentRecursive,
        ),
    }
}

/// What a session event means for a watch: its session ended (start over),
/// or the client is back on a connection after losing one (notifications
/// of the gap may be lost, and the watch may not have followed the client
/// to another server: checked, after the ensemble's leader was killed no
/// more came; add it again, then read again).
fn session_ended(event: &zk::WatchedEvent) -> Option<Ended> {
    if event.event_type != zk::EventType::Session {
        return None;
    }
    if event.session_state.is_terminated() {
        Some(Ended::Again)
    } else if event.session_state == zk::SessionState::SyncConnected {
        Some(Ended::Reconnected)
    } else {
        None
    }
}

struct Upstream {
    session: Arc<Session>,
    hub: Arc<Hub>,
    root: String,
    target: WatchTarget,
    tx: watch::Sender<Published>,
}

/// What ended one session's watch.
enum Ended {
    /// Nobody listens any more.
    Unwatched,
    /// The session ended, or the watch could not be added: start over.
    Again,
    /// The client is back on a connection: add the watch again at once.
    Reconnected,
}

impl Upstream {
    async fn run(self) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            let ended = tokio::select! {
                biased;
                _ = self.tx.closed() => Ended::Unwatched,
                ended = self.one_session(&mut backoff) => ended,
            };
            match ended {
                Ended::Unwatched if self.hub.retire(&self.target, &self.tx) => return,
                Ended::Unwatched | Ended::Reconnected => {}
                Ended::Again => tokio::time::sleep(backoff.next_delay()).await,
            }
        }
    }

    /// Watches on one session until it ends.
    async fn one_session(&self, backoff: &mut Backoff) -> Ended {
        let client = match self.session.client().await {
            Ok(client) => client,
            Err(error) => return self.failed(error),
        };
        let (path, mode) = watched(&self.root, &self.target);
        let mut watcher = match client.watch(&path, mode).await {
            Ok(watcher) => watcher,
            Err(error) => return self.failed(super::session::failure("zookeeper watch", error)),
        };
        // Read after the watch is in place: no change falls between.
        loop {
            match read_target(&self.session, &self.root, &self.target).await {
                Ok(snapshot) => {
                    backoff.reset();
                    self.publish(snapshot);
                }
                Err(error) => return self.failed(error),
            }
            // Wait for a change worth a read.
            loop {
                let event = watcher.changed().await;
                if let Some(ended) = session_ended(&event) {
                    return ended;
                }
                if event.event_type != zk::EventType::Session && self.concerns(&event.path) {
                    break;
                }
            }
            // One read for every notification already here (a `multi` of
            // many writes notifies once per write).
            while let Some(event) = futures::FutureExt::now_or_never(watcher.changed()) {
                if let Some(ended) = session_ended(&event) {
                    return ended;
                }
            }
        }
    }

    /// Whether a notification on `path` may change the target's state.
    fn concerns(&self, path: &str) -> bool {
        match (&self.target, super::paths::key_of(&self.root, path)) {
            (WatchTarget::Key(_), _) => true,
            (WatchTarget::Prefix(prefix), Some(key)) => key.starts_with(prefix.as_str()),
            (WatchTarget::Prefix(_), None) => false,
        }
    }

    fn publish(&self, snapshot: Snapshot) {
        let unchanged = matches!(&*self.tx.borrow(), Published::State(s) if **s == snapshot);
        if !unchanged {
            self.tx.send_replace(Published::State(Arc::new(snapshot)));
        }
    }

    fn failed(&self, error: Error) -> Ended {
        if matches!(error, Error::PermissionDenied(_)) {
            self.tx.send_replace(Published::Failed(Arc::new(error)));
        } else {
            tracing::debug!(%error, "zookeeper watch: reading again after a failure");
        }
        Ended::Again
    }
}

/// What one watch has delivered, and what it has still to yield.
struct Subscriber {
    rx: watch::Receiver<Published>,
    known: Known,
    /// The zxid of the state `known` reflects.
    seen: u64,
    pending: VecDeque<KvEvent>,
}

/// The event stream of one watch, with its initial state read now, and how
/// many of its first events are that state.
pub(super) async fn open(
    store: &ZooKeeperStore,
    target: &WatchTarget,
    options: WatchOptions,
) -> Result<(BoxStream<'static, Result<KvEvent>>, Option<usize>)> {
    let rx = store.hub.subscribe(store, target);
    let initial = read_target(&store.session, &store.root, target).await?;
    let mut subscriber = Subscriber {
        rx,
        known: Known::new(),
        seen: initial.zxid,
        pending: VecDeque::new(),
    };
    let mut fresh = Vec::new();
    for pair in &initial.pairs {
        let (key, entry) = known_entry(pair);
        subscriber.known.insert(key, entry);
        if options.after.is_none_or(|after| pair.version > after) {
            fresh.push(pair.clone());
        }
    }
    let initial_events = options.after.is_none().then_some(fresh.len());
    let mut events: Vec<KvEvent> = fresh.into_iter().map(KvEvent::Put).collect();
    if let Some(after) = options.after {
        // Deletes newer than `after` whose marker stands are changes too.
        events.extend(
            initial
                .deleted
                .iter()
                .filter(|(_, version)| **version > after)
                .map(|(key, version)| KvEvent::Delete {
                    key: key.clone(),
                    version: *version,
                }),
        );
        events.sort_by_key(KvEvent::version);
    }
    subscriber.pending.extend(events);
    let events = futures::stream::unfold(Some(subscriber), |subscriber| async move {
        let mut subscriber = subscriber?;
        match subscriber.next_event().await {
            Ok(event) => Some((Ok(event), Some(subscriber))),
            Err(error) => Some((Err(error), None)),
        }
    });
    Ok((events.boxed(), initial_events))
}

impl Subscriber {
    async fn next_event(&mut self) -> Result<KvEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            if self.rx.changed().await.is_err() {
                return Err(Error::Unreachable {
                    message: "the ZooKeeper watch's upstream ended".into(),
                    source: None,
                });
            }
            let published = self.rx.borrow_and_update().clone();
            match published {
                Published::Nothing => {}
                Published::State(snapshot) => self.apply(&snapshot),
                Published::Failed(error) => return Err((*error).clone()),
            }
        }
    }

    /// Queues the difference between what this watch reported and
    /// `snapshot`, if it is newer.
    fn apply(&mut self, snapshot: &Snapshot) {
        if snapshot.zxid <= self.seen {
            return;
        }
        self.seen = snapshot.zxid;
        let mut events = crate::watch::difference(&mut self.known, &snapshot.pairs, snapshot.zxid);
        for event in &mut events {
            if let KvEvent::Delete { key, version } = event
                && let Some(marker) = snapshot.deleted.get(key.as_str())
            {
                *version = (*version).min(*marker).max(1);
            }
        }
        events.sort_by_key(|e| (e.version(), matches!(e, KvEvent::Put(_))));
        self.pending.extend(events);
    }
}
