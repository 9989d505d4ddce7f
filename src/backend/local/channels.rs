//! A local store's watch channels: one broadcast channel per watched key
//! and per watched prefix, created by the first watch and dropped with the
//! last, so a change wakes only the watches it concerns. A watch that falls
//! more than the channel's capacity behind is told it lagged and catches up
//! from the history instead.

use std::collections::{BTreeMap, HashMap};

use tokio::sync::broadcast;

use super::change::{Change, KeyHasher};
use crate::watch::WatchTarget;

/// Changes buffered per channel before a slow watcher lags.
const CHANNEL_CAPACITY: usize = 8;

type ChangeSender = broadcast::Sender<Change>;
/// What a watch reads its target's changes from.
pub(super) type ChangeReceiver = broadcast::Receiver<Change>;

#[derive(Default)]
pub(super) struct Channels {
    keys: HashMap<String, ChangeSender, KeyHasher>,
    prefixes: HashMap<String, ChangeSender, KeyHasher>,
    /// Lengths of the watched prefixes, with how many prefixes have each: a
    /// change checks one map entry per distinct length, not every prefix.
    prefix_lengths: BTreeMap<usize, usize>,
}

impl Channels {
    /// Sends `change` to the watches of its key and of every watched prefix of it.
    pub(super) fn send(&self, change: &Change) {
        if !self.keys.is_empty()
            && let Some(tx) = self.keys.get(&*change.key)
        {
            // No receiver left is not an error: the channel goes soon.
            let _ = tx.send(change.clone());
        }
        for &len in self.prefix_lengths.keys() {
            if len > change.key.len() {
                break;
            }
            if let Some(tx) = change.key.get(..len).and_then(|p| self.prefixes.get(p)) {
                let _ = tx.send(change.clone());
            }
        }
    }

    pub(super) fn subscribe(&mut self, target: &WatchTarget) -> ChangeReceiver {
        let (channels, name) = match target {
            WatchTarget::Key(key) => (&mut self.keys, key),
            WatchTarget::Prefix(prefix) => (&mut self.prefixes, prefix),
        };
        if let Some(tx) = channels.get(name) {
            return tx.subscribe();
        }
        let (tx, rx) = broadcast::channel(CHANNEL_CAPACITY);
        channels.insert(name.clone(), tx);
        if let WatchTarget::Prefix(prefix) = target {
            *self.prefix_lengths.entry(prefix.len()).or_default() += 1;
        }
        rx
    }

    /// Drops the channel of `target` once no watch listens to it any more.
    pub(super) fn unsubscribe(&mut self, target: &WatchTarget) {
        let (channels, name) = match target {
            WatchTarget::Key(key) => (&mut self.keys, key),
            WatchTarget::Prefix(prefix) => (&mut self.prefixes, prefix),
        };
        if channels.get(name).is_none_or(|tx| tx.receiver_count() > 0) {
            return;
        }
        channels.remove(name);
        if let WatchTarget::Prefix(prefix) = target
            && let Some(count) = self.prefix_lengths.get_mut(&prefix.len())
        {
            *count -= 1;
            if *count == 0 {
                self.prefix_lengths.remove(&prefix.len());
            }
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.keys.len() + self.prefixes.len()
    }
}
