//! One blocking reader of the change log per store (`XREAD BLOCK` on a
//! connection of its own) that hands each entry to the watches it concerns.
//! A watch registers with the hub's position and catches up to it from the
//! log itself ([`super::watch`]); from then on the hub sends it every later
//! entry. A hub that finds entries gone (trimmed past it while it was away)
//! tells every watch to re-read the state.
//!
//! Each watch's channel is bounded ([`WATCH_BUFFER`]): the hub never waits
//! for a slow reader. A watch whose channel is full misses entries; the hub
//! marks it behind, and the watch reads what it missed from the log itself
//! before it takes anything more from its channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::streams::{StreamReadOptions, StreamReadReply};
use tokio::sync::mpsc;

use super::client::Client;
use super::log::{LogEntry, Position, after_version, follows, stream_id};
use crate::backoff::Backoff;
use crate::watch::WatchTarget;

/// How long one XREAD blocks before it is sent again.
const BLOCK: Duration = Duration::from_secs(5);
/// Entries read per XREAD.
const BATCH: usize = 1_000;
/// Entries a watch's channel holds before the watch is marked behind.
pub(super) const WATCH_BUFFER: usize = 1_024;

/// One registered watch.
#[derive(Debug)]
struct Watcher {
    target: WatchTarget,
    tx: mpsc::Sender<HubMessage>,
    /// Set when an entry for it did not fit in its channel.
    behind: Arc<AtomicBool>,
    /// Set when the server lost the store's data: re-read everything.
    reset: Arc<AtomicBool>,
}

impl Watcher {
    fn send(&self, message: HubMessage) {
        if self.tx.try_send(message).is_err() {
            self.behind.store(true, Ordering::Release);
        }
    }
}

/// What the hub sends a watch.
#[derive(Debug)]
pub(super) enum HubMessage {
    Change(LogEntry),
    /// Entries were lost to trimming: re-read the state.
    Resync,
}

#[derive(Debug, Default)]
struct HubState {
    watchers: HashMap<u64, Watcher>,
    next_id: u64,
    /// Every entry up to here was handed out; `None` until the reader runs.
    position: Option<Position>,
    /// The running reader's number: a reader that is not the current one ends.
    generation: u64,
}

/// The store's hub; the reader task runs while watches are registered.
#[derive(Debug, Default)]
pub(super) struct Hub {
    state: Mutex<HubState>,
}

/// A watch's place in the hub; dropping it unregisters.
#[derive(Debug)]
pub(super) struct Registration {
    hub: Weak<Hub>,
    id: u64,
    behind: Arc<AtomicBool>,
    reset: Arc<AtomicBool>,
}

impl Registration {
    /// True once after the server lost the store's data: the watch re-reads
    /// its whole state and yields the difference.
    pub(super) fn take_reset(&self) -> bool {
        self.reset.swap(false, Ordering::AcqRel)
    }

    /// Where the hub is, when entries for this watch were dropped since the
    /// last call (its channel was full): the watch reads the log up to there.
    pub(super) fn missed_up_to(&self) -> Option<Position> {
        if !self.behind.swap(false, Ordering::AcqRel) {
            return None;
        }
        let hub = self.hub.upgrade()?;
        hub.lock().position
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.lock().watchers.remove(&self.id);
        }
    }
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a watch of `target` that has everything up to `from`;
    /// returns where the hub is (the watch reads the log up to there
    /// itself) and the channel of every later entry.
    pub(super) fn register(
        self: &Arc<Self>,
        client: &Arc<Client>,
        target: WatchTarget,
        from: Position,
    ) -> (Position, mpsc::Receiver<HubMessage>, Registration) {
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let behind = Arc::new(AtomicBool::new(false));
        let reset = Arc::new(AtomicBool::new(false));
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        let watcher = Watcher {
            target,
            tx,
            behind: behind.clone(),
            reset: reset.clone(),
        };
        state.watchers.insert(id, watcher);
        let position = match state.position {
            Some(position) => position,
            None => {
                // The first watch starts the reader where it is.
                state.position = Some(from);
                state.generation += 1;
                let reader = read_log(Arc::downgrade(self), client.clone(), from, state.generation);
                tokio::spawn(reader);
                from
            }
        };
        let registration = Registration {
            hub: Arc::downgrade(self),
            id,
            behind,
            reset,
        };
        (position, rx, registration)
    }

    /// The server lost the store's data; its counter is now `revision`.
    /// The reader starts again from there, and every watch re-reads.
    pub(super) fn reset(self: &Arc<Self>, client: &Arc<Client>, revision: u64) {
        let mut state = self.lock();
        state.generation += 1;
        let from = after_version(revision);
        if state.watchers.is_empty() {
            state.position = None;
            return;
        }
        state.position = Some(from);
        for watcher in state.watchers.values() {
            watcher.reset.store(true, Ordering::Release);
            // Wakes a watch waiting on its channel; a full one is awake.
            let _ = watcher.tx.try_send(HubMessage::Resync);
        }
        let reader = read_log(Arc::downgrade(self), client.clone(), from, state.generation);
        tokio::spawn(reader);
    }

    /// Hands out `entries`, read after `last`; returns the new position.
    fn dispatch(
        &self,
        generation: u64,
        mut last: Position,
        entries: Vec<LogEntry>,
    ) -> Option<Position> {
        let mut state = self.lock();
        if state.generation != generation {
            return None;
        }
        for entry in entries {
            if entry.position <= last {
                continue;
            }
            if !follows(last, entry.position) {
                tracing::warn!(?last, next = ?entry.position, "redis change log trimmed past the watches; they re-read the state");
                for watcher in state.watchers.values() {
                    watcher.send(HubMessage::Resync);
                }
            }
            last = entry.position;
            for watcher in state.watchers.values() {
                if watcher.target.matches(&entry.key) {
                    watcher.send(HubMessage::Change(entry.clone()));
                }
            }
        }
        state.position = Some(last);
        Some(last)
    }

    /// Stops the reader (no watch left): the next watch starts it again.
    fn stop_if_idle(&self, generation: u64) -> bool {
        let mut state = self.lock();
        if state.generation != generation {
            return true;
        }
        if state.watchers.is_empty() {
            state.position = None;
            return true;
        }
        false
    }
}

/// The reader: XREAD BLOCK from `position` on, until no watch is left or
/// the store is gone; reconnects with backoff after failures.
async fn read_log(hub: Weak<Hub>, client: Arc<Client>, mut position: Position, generation: u64) {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    let mut connection = None;
    loop {
        let Some(alive) = hub.upgrade() else { return };
        if alive.stop_if_idle(generation) {
            return;
        }
        drop(alive);
        let conn = match connection.take() {
            Some(conn) => conn,
            None => match client.blocking_connection(BLOCK).await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!(error = %e, "redis watch connection failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            },
        };
        let mut conn = conn;
        let options = StreamReadOptions::default()
            .block(BLOCK.as_millis() as usize)
            .count(BATCH);
        let read: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREAD")
            .arg(&options)
            .arg("STREAMS")
            .arg(client.log_key())
            .arg(stream_id(position))
            .query_async(&mut conn)
            .await;
        match read {
            Ok(reply) => {
                backoff.reset();
                connection = Some(conn);
                let entries: Vec<LogEntry> = reply
                    .into_iter()
                    .flat_map(|r| r.keys)
                    .flat_map(|k| k.ids)
                    .filter_map(|id| LogEntry::parse(&id))
                    .collect();
                if entries.is_empty() {
                    continue;
                }
                let Some(alive) = hub.upgrade() else { return };
                match alive.dispatch(generation, position, entries) {
                    Some(next) => {
                        client.epoch.saw(next.0);
                        position = next;
                    }
                    None => return,
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "redis change log read failed; reconnecting");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}
