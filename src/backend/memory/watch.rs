//! Watches on the memory store: no task per watch, just a stream over the
//! target's broadcast channel that catches up from the history when it lags.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::broadcast::error::RecvError;

use super::Shared;
use super::channels::ChangeReceiver;
use crate::watch::WatchTarget;
use crate::{KvEvent, Result, WatchOptions};

/// A receiver on a target's channel that drops the channel with its last
/// receiver, so watched-then-forgotten keys leave nothing behind.
struct Subscription {
    shared: Arc<Shared>,
    target: WatchTarget,
    rx: Option<ChangeReceiver>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.rx.take());
        self.shared.write().unsubscribe(&self.target);
    }
}

struct WatchState {
    subscription: Subscription,
    /// Events decided on but not yet yielded (initial state, catch-up).
    pending: VecDeque<KvEvent>,
    /// Revision up to which everything has been queued; live events at or
    /// below it are duplicates.
    seen: u64,
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
    let watch = WatchState {
        subscription: Subscription {
            shared: shared.clone(),
            target,
            rx: Some(rx),
        },
        pending: pending.into(),
        seen,
    };
    Ok(futures::stream::unfold(Some(watch), next_event).boxed())
}

async fn next_event(watch: Option<WatchState>) -> Option<(Result<KvEvent>, Option<WatchState>)> {
    let mut watch = watch?;
    loop {
        if let Some(event) = watch.pending.pop_front() {
            return Some((Ok(event), Some(watch)));
        }
        let rx = watch.subscription.rx.as_mut()?;
        match rx.recv().await {
            Ok(change) => {
                if change.version > watch.seen {
                    watch.seen = change.version;
                    return Some((Ok(change.to_event()), Some(watch)));
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "memory watch fell behind; catching up from history");
                let state = watch.subscription.shared.read();
                match state.changes_after(&watch.subscription.target, watch.seen) {
                    Ok(changes) => {
                        watch.seen = state.revision();
                        watch.pending.extend(changes);
                    }
                    // Not even the tombstones reach back: say so, and end.
                    Err(e) => return Some((Err(e), None)),
                }
            }
            // The sender lives as long as a receiver does; this is unreachable
            // in practice, and ending is the honest answer if it happens.
            Err(RecvError::Closed) => return None,
        }
    }
}
