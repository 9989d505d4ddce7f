//! Watches on a local store: no task per watch, just a stream that reads
//! its target's broadcast channel and catches up from the history when it
//! lags.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::broadcast::error::RecvError;

use super::Shared;
use super::change::Change;
use super::channels::ChangeReceiver;
use crate::watch::{Delivered, WatchTarget};
use crate::{KvEvent, Result, WatchOptions};

/// One watch. Dropping it drops its receiver, then the target's channel if
/// it was the last, so watched-then-forgotten keys leave nothing behind.
struct MemoryWatch {
    shared: Arc<Shared>,
    target: WatchTarget,
    /// `None` only while dropping.
    rx: Option<ChangeReceiver>,
    /// Events decided on but not yet yielded (initial state, catch-up).
    pending: VecDeque<KvEvent>,
    /// Sequence number up to which every change has been queued; live
    /// changes at or below it are duplicates.
    seen: u64,
    /// What a re-read starts after, should catching up find the history
    /// gone: from the middle of a txn, before its version, skipping the
    /// keys of it already queued.
    progress: Delivered,
    ended: bool,
}

impl Drop for MemoryWatch {
    fn drop(&mut self) {
        // The receiver goes first, so that the channel sees it gone.
        drop(self.rx.take());
        self.shared.write().unsubscribe(&self.target);
    }
}

/// Opens the event stream of one watch: the initial state or the replay
/// after `options.after`, then the live changes.
pub(super) fn open(
    shared: &Arc<Shared>,
    target: WatchTarget,
    options: &WatchOptions,
) -> Result<(BoxStream<'static, Result<KvEvent>>, Option<usize>)> {
    let mut state = shared.write();
    let rx = state.subscribe(&target);
    let (pending, resume_after) = match options.after {
        None => (state.snapshot(&target), state.revision()),
        Some(after) => match state.changes_after(&target, after) {
            Ok(changes) => (changes, state.revision().max(after)),
            Err(e) => {
                drop(rx);
                state.unsubscribe(&target);
                return Err(e);
            }
        },
    };
    let seen = state.seq();
    drop(state);
    let initial = options.after.is_none().then_some(pending.len());
    let watch = MemoryWatch {
        shared: shared.clone(),
        target,
        rx: Some(rx),
        pending: pending.into(),
        seen,
        progress: Delivered::whole(resume_after),
        ended: false,
    };
    let events = futures::stream::unfold(watch, |mut watch| async move {
        let event = watch.next_event().await?;
        // A durable store shows a change once it is on disk.
        if let Ok(change) = &event
            && let Err(e) = watch.shared.settled(change.version()).await
        {
            watch.ended = true;
            return Some((Err(e), watch));
        }
        Some((event, watch))
    });
    Ok((events.boxed(), initial))
}

impl MemoryWatch {
    fn live(&mut self, change: Change) -> Option<KvEvent> {
        (change.seq > self.seen).then(|| {
            self.seen = change.seq;
            self.progress.record(&change.key, change.version);
            change.into_event()
        })
    }

    /// The next event; `None` once the watch has ended.
    async fn next_event(&mut self) -> Option<Result<KvEvent>> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            match self.rx.as_mut()?.recv().await {
                Ok(change) => {
                    if let Some(event) = self.live(change) {
                        return Some(Ok(event));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    if let Err(e) = self.catch_up(missed) {
                        // Not even the tombstones reach back: say so, and end.
                        self.ended = true;
                        return Some(Err(e));
                    }
                }
                // The channel goes only once no watch holds a receiver.
                Err(RecvError::Closed) => return None,
            }
        }
    }

    fn catch_up(&mut self, missed: u64) -> Result<()> {
        tracing::debug!(
            missed,
            "local store watch fell behind; catching up from history"
        );
        let state = self.shared.read();
        let changes = match state.changes_after_seq(&self.target, self.seen) {
            Some(changes) => changes,
            // Beyond the history: re-read.
            None => {
                let mut changes =
                    state.changes_after(&self.target, self.progress.reread_after())?;
                changes.retain(|event| !self.progress.is_repeat(event));
                changes
            }
        };
        self.seen = state.seq();
        self.progress = Delivered::whole(state.revision());
        self.pending.extend(changes);
        Ok(())
    }
}
