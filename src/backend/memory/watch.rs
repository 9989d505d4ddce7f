//! Watches on the memory store: no task per watch, just a stream that polls
//! its target's [`super::fanout::Fanout`] directly and catches up from the
//! history when it lags.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::Stream;
use futures::stream::BoxStream;

use super::Shared;
use super::channels::{ChangeReceiver, Received};
use super::state::Change;
use crate::watch::WatchTarget;
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
    /// Revision up to which everything has been queued; live events at or
    /// below it are duplicates.
    seen: u64,
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
) -> Result<BoxStream<'static, Result<KvEvent>>> {
    let mut state = shared.write();
    let rx = state.subscribe(&target);
    let (pending, seen) = match options.after {
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
    drop(state);
    Ok(Box::pin(MemoryWatch {
        shared: shared.clone(),
        target,
        rx: Some(rx),
        pending: pending.into(),
        seen,
        ended: false,
    }))
}

impl MemoryWatch {
    fn live(&mut self, change: Change) -> Option<KvEvent> {
        (change.version > self.seen).then(|| {
            self.seen = change.version;
            change.into_event()
        })
    }

    fn catch_up(&mut self, missed: u64) -> Result<()> {
        tracing::debug!(missed, "memory watch fell behind; catching up from history");
        let state = self.shared.read();
        let changes = state.changes_after(&self.target, self.seen)?;
        self.seen = state.revision();
        self.pending.extend(changes);
        Ok(())
    }
}

impl Stream for MemoryWatch {
    type Item = Result<KvEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            if let Some(event) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            let Some(rx) = this.rx.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(rx.poll_recv(cx)) {
                Received::Change(change) => {
                    if let Some(event) = this.live(change) {
                        return Poll::Ready(Some(Ok(event)));
                    }
                }
                Received::Lagged(missed) => {
                    if let Err(e) = this.catch_up(missed) {
                        // Not even the tombstones reach back: say so, and end.
                        this.ended = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
        }
    }
}
