//! One watch on Redis: the initial state (or the log after `after`), the
//! log up to the hub's position read by the watch itself, then the hub's
//! entries; after entries were trimmed away, the state re-read and the
//! difference yielded (deletions from the tombstones), or
//! `Error::Compacted` when even those are gone.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use redis::streams::StreamRangeReply;
use tokio::sync::mpsc;

use super::client::Client;
use super::hub::{Hub, HubMessage, Registration};
use super::log::{LogEntry, Position, after_version, follows, stream_id};
use super::range::read_state;
use crate::watch::{Delivered, Known, WatchTarget, difference, known_entry};
use crate::{KvEvent, Result, WatchOptions};

/// Entries read per XRANGE while catching up.
const PAGE: usize = 1_000;

struct RedisWatch {
    client: Arc<Client>,
    target: WatchTarget,
    rx: mpsc::Receiver<HubMessage>,
    registration: Registration,
    pending: VecDeque<KvEvent>,
    /// Every change up to here was queued or delivered.
    delivered: Position,
    /// The same, for a re-read from the middle of a txn (a txn's changes
    /// share a version): which keys of the last version were queued.
    progress: Delivered,
    /// What this watch has reported present, for the difference after the
    /// server lost the store's data.
    known: Known,
    ended: bool,
}

/// Opens a watch of `target`.
pub(super) async fn open(
    client: &Arc<Client>,
    hub: &Arc<Hub>,
    target: WatchTarget,
    options: &WatchOptions,
) -> Result<(BoxStream<'static, Result<KvEvent>>, Option<usize>)> {
    // `start`: where a reader this watch starts may begin — never past the
    // log's present, or a watch after a version not reached yet would hold
    // every other watch of the store back until the log got there.
    let (pending, delivered, start) = match options.after {
        None => {
            let state = read_state(client, &target, None).await?;
            let events = state.pairs.into_iter().map(KvEvent::Put).collect();
            let read = after_version(state.revision);
            (events, read, read)
        }
        Some(after) => {
            let now = client.revision().await?;
            let start = after_version(after.min(now));
            (VecDeque::new(), after_version(after), start)
        }
    };
    // The catch-up below queues changes after the initial state.
    let initial = options.after.is_none().then_some(pending.len());
    let (hub_position, rx, registration) = hub.register(client, target.clone(), start);
    let mut watch = RedisWatch {
        client: client.clone(),
        target,
        rx,
        registration,
        pending,
        delivered,
        progress: Delivered::whole(delivered.0),
        known: Known::new(),
        ended: false,
    };
    watch.catch_up(hub_position).await?;
    let events = futures::stream::unfold(watch, |mut watch| async move {
        let event = watch.next_event().await?;
        Some((event, watch))
    });
    Ok((events.boxed(), initial))
}

impl RedisWatch {
    /// The next event, remembered in `known`.
    async fn next_event(&mut self) -> Option<Result<KvEvent>> {
        let event = self.next_unseen().await;
        match &event {
            Some(Ok(KvEvent::Put(pair))) => {
                let (key, entry) = known_entry(pair);
                self.known.insert(key, entry);
            }
            Some(Ok(KvEvent::Delete { key, .. })) => {
                self.known.remove(key);
            }
            _ => {}
        }
        event
    }

    async fn next_unseen(&mut self) -> Option<Result<KvEvent>> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            // The server lost the store's data: all of it again, against
            // what this watch reported.
            if self.registration.take_reset() {
                if let Err(e) = self.reread().await {
                    self.ended = true;
                    return Some(Err(e));
                }
                continue;
            }
            // Entries that did not fit in the channel: from the log, before
            // anything newer from the channel (which skips what is read here).
            if let Some(hub_position) = self.registration.missed_up_to() {
                if let Err(e) = self.catch_up(hub_position).await {
                    self.ended = true;
                    return Some(Err(e));
                }
                continue;
            }
            match self.rx.recv().await? {
                HubMessage::Change(entry) => {
                    if entry.position > self.delivered {
                        self.advance(&entry);
                        return Some(Ok(entry.into_event()));
                    }
                }
                HubMessage::Resync => {
                    if let Err(e) = self.resync().await {
                        self.ended = true;
                        return Some(Err(e));
                    }
                }
            }
        }
    }

    /// Reads the log after `delivered` up to `until` (the hub's position).
    async fn catch_up(&mut self, until: Position) -> Result<()> {
        while self.delivered < until {
            let command = redis::cmd("XRANGE")
                .arg(self.client.log_key())
                .arg(format!("({}", stream_id(self.delivered)))
                .arg(stream_id(until))
                .arg("COUNT")
                .arg(PAGE)
                .clone();
            let reply: StreamRangeReply = self.client.command("watch", &command).await?;
            let entries: Vec<LogEntry> = reply.ids.iter().filter_map(LogEntry::parse).collect();
            let Some(first) = entries.first() else {
                return Ok(());
            };
            if !follows(self.delivered, first.position) {
                return self.resync().await;
            }
            let full_page = entries.len() == PAGE;
            for entry in entries {
                self.advance(&entry);
                if self.target.matches(&entry.key) {
                    self.pending.push_back(entry.into_event());
                }
            }
            if !full_page {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The difference between what this watch reported and the whole state
    /// now, after the server lost the store's data (versions before and
    /// after cannot be compared; values can).
    async fn reread(&mut self) -> Result<()> {
        let state = read_state(&self.client, &self.target, None).await?;
        self.pending.clear();
        self.pending
            .extend(difference(&mut self.known, &state.pairs, state.revision));
        self.delivered = after_version(state.revision);
        self.progress = Delivered::whole(state.revision);
        Ok(())
    }

    /// `entry` is queued or delivered.
    fn advance(&mut self, entry: &LogEntry) {
        self.progress.record(&entry.key, entry.position.0);
        self.delivered = entry.position;
    }

    /// The difference between what was delivered and the state now. From
    /// the middle of a txn (some of its changes delivered), the re-read
    /// starts at its version and skips the keys already delivered there.
    async fn resync(&mut self) -> Result<()> {
        let after = self.progress.reread_after();
        tracing::debug!(after, "redis watch re-reads the state");
        let state = read_state(&self.client, &self.target, Some(after)).await?;
        let mut changes: Vec<KvEvent> = state
            .pairs
            .into_iter()
            .filter(|p| p.version > after)
            .map(KvEvent::Put)
            .chain(state.deleted)
            .filter(|event| !self.progress.is_repeat(event))
            .collect();
        changes.sort_by_key(KvEvent::version);
        self.pending.extend(changes);
        self.delivered = self.delivered.max(after_version(state.revision));
        self.progress = Delivered::whole(self.delivered.0);
        Ok(())
    }
}
