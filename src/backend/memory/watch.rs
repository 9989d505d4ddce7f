//! Watches on the memory store: no task per watch, just a stream over the
//! target's broadcast channel that catches up from the history when it lags.
//!
//! The stream is written by hand rather than with `stream::unfold`, whose
//! state moves in and out of a fresh future on every event: the receiver
//! lives in one reused boxed future, which takes a queued change at once and
//! otherwise waits for the next.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::BoxStream;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::ReusableBoxFuture;

use super::Shared;
use super::channels::ChangeReceiver;
use super::state::Change;
use crate::watch::WatchTarget;
use crate::{KvEvent, Result, WatchOptions};

/// What a parked receiver brings back, with the receiver itself.
type Received = (std::result::Result<Arc<Change>, RecvError>, ChangeReceiver);

async fn receive(mut rx: ChangeReceiver) -> Received {
    let received = rx.recv().await;
    (received, rx)
}

/// One watch. Dropping it drops its receiver, then the target's channel if
/// it was the last, so watched-then-forgotten keys leave nothing behind.
struct MemoryWatch {
    shared: Arc<Shared>,
    target: WatchTarget,
    /// The receiver, when it is not parked in `parked`.
    rx: Option<ChangeReceiver>,
    parked: ReusableBoxFuture<'static, Received>,
    /// Events decided on but not yet yielded (initial state, catch-up).
    pending: VecDeque<KvEvent>,
    /// Revision up to which everything has been queued; live events at or
    /// below it are duplicates.
    seen: u64,
    ended: bool,
}

impl Drop for MemoryWatch {
    fn drop(&mut self) {
        // The receiver may be inside the parked future: drop it first.
        self.parked.set(std::future::pending());
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
        parked: ReusableBoxFuture::new(std::future::pending()),
        pending: pending.into(),
        seen,
        ended: false,
    }))
}

/// What one receive means for the watch.
enum Step {
    Yield(KvEvent),
    Again,
    End(Option<crate::Error>),
}

impl MemoryWatch {
    fn live(&mut self, change: Arc<Change>) -> Step {
        if change.version > self.seen {
            self.seen = change.version;
            Step::Yield(change.to_event())
        } else {
            Step::Again
        }
    }

    fn catch_up(&mut self, missed: u64) -> Step {
        tracing::debug!(missed, "memory watch fell behind; catching up from history");
        let state = self.shared.read();
        match state.changes_after(&self.target, self.seen) {
            Ok(changes) => {
                self.seen = state.revision();
                self.pending.extend(changes);
                Step::Again
            }
            // Not even the tombstones reach back: say so, and end.
            Err(e) => Step::End(Some(e)),
        }
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
            let step = match this.rx.take() {
                // One receive both takes a queued change and, if there is
                // none, registers the waker: a `try_recv` first would lock
                // the channel's tail twice per change and watcher.
                Some(rx) => {
                    this.parked.set(receive(rx));
                    Step::Again
                }
                None => match this.parked.poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready((received, rx)) => {
                        this.rx = Some(rx);
                        match received {
                            Ok(change) => this.live(change),
                            Err(RecvError::Lagged(missed)) => this.catch_up(missed),
                            Err(RecvError::Closed) => Step::End(None),
                        }
                    }
                },
            };
            match step {
                Step::Yield(event) => return Poll::Ready(Some(Ok(event))),
                Step::Again => {}
                Step::End(error) => {
                    this.ended = true;
                    return Poll::Ready(error.map(Err));
                }
            }
        }
    }
}
