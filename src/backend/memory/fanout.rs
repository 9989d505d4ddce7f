//! One target's changes, handed to each of its watches: a small ring of the
//! latest changes that receivers read with a plain `poll`, and the wakers of
//! those waiting for the next one.
//!
//! It does what a `tokio::sync::broadcast` channel does for the memory store,
//! minus the future that a broadcast receive has to live in: a watch polls
//! its receiver directly, so a delivery costs one lock of the ring and one
//! reference count, with no boxed future to rebuild per change. Sends happen
//! under the store's write lock, so there is one sender at a time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use slab::Slab;

use super::state::Change;

/// A target's fan-out; [`super::channels::Channels`] holds one reference,
/// each receiver another.
pub(super) struct Fanout {
    ring: Mutex<Ring>,
    /// The wakers of one send, woken after the ring's lock is released; kept
    /// to reuse its allocation (only the sender, under the store's write
    /// lock, takes it).
    to_wake: Mutex<Vec<Waker>>,
}

struct Ring {
    /// At most `capacity` changes; `changes[i]` has sequence `first + i`.
    /// Each is cloned (two reference counts) by each receiver that reads
    /// it: a change needs no allocation of its own.
    changes: VecDeque<Change>,
    capacity: usize,
    first: u64,
    /// Receivers waiting for the sequence after the last: all woken, and
    /// the slab emptied, by the next send.
    waiting: Slab<Waker>,
    /// Counts sends: a receiver's place in `waiting` is valid only in the
    /// round it registered in.
    round: u64,
}

/// What a receiver takes.
pub(super) enum Received {
    Change(Change),
    /// This many changes were overwritten before the receiver read them; it
    /// goes on from the oldest change still in the ring.
    Lagged(u64),
}

impl Fanout {
    pub(super) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Fanout {
            ring: Mutex::new(Ring {
                // Grown on the first sends: a quiet target holds nothing.
                changes: VecDeque::new(),
                capacity: capacity.max(1),
                first: 0,
                waiting: Slab::new(),
                round: 0,
            }),
            to_wake: Mutex::new(Vec::new()),
        })
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        // Nothing can panic while the lock is held in a way that leaves the
        // ring inconsistent, so a poisoned lock still guards valid data.
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver of the changes sent from now on.
    pub(super) fn subscribe(self: &Arc<Self>) -> ChangeReceiver {
        let ring = self.ring();
        ChangeReceiver {
            fanout: self.clone(),
            next: ring.first + ring.changes.len() as u64,
            registered: None,
        }
    }

    /// How many receivers there are (the caller holds the store's lock, under
    /// which receivers are made and dropped).
    pub(super) fn receiver_count(self: &Arc<Self>) -> usize {
        Arc::strong_count(self) - 1
    }

    /// Adds `change` to the ring and wakes every waiting receiver.
    pub(super) fn send(&self, change: Change) {
        let only = {
            let mut ring = self.ring();
            if ring.changes.len() == ring.capacity {
                ring.changes.pop_front();
                ring.first += 1;
            }
            ring.changes.push_back(change);
            ring.round += 1;
            match ring.waiting.len() {
                0 => return,
                // One watch on a key is the common case: its waker needs no
                // list, nor the list's lock.
                1 => ring.waiting.drain().next(),
                _ => {
                    let mut to_wake = self.to_wake.lock().unwrap_or_else(|e| e.into_inner());
                    to_wake.extend(ring.waiting.drain());
                    drop(ring);
                    for waker in to_wake.drain(..) {
                        waker.wake();
                    }
                    return;
                }
            }
        };
        if let Some(waker) = only {
            waker.wake();
        }
    }
}

/// One watch's position in its target's changes.
pub(super) struct ChangeReceiver {
    fanout: Arc<Fanout>,
    /// The sequence of the next change to read.
    next: u64,
    /// Where this receiver's waker is in `waiting`, and in which round.
    registered: Option<(u64, usize)>,
}

impl ChangeReceiver {
    /// The next change, or `Pending` with the waker registered for it.
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Received> {
        let mut ring = self.fanout.ring();
        if self.next < ring.first {
            let missed = ring.first - self.next;
            self.next = ring.first;
            return Poll::Ready(Received::Lagged(missed));
        }
        let offset = (self.next - ring.first) as usize;
        if let Some(change) = ring.changes.get(offset) {
            let change = change.clone();
            self.next += 1;
            return Poll::Ready(Received::Change(change));
        }
        let round = ring.round;
        match self.registered {
            Some((registered_round, key)) if registered_round == round => {
                if let Some(waker) = ring.waiting.get_mut(key) {
                    if !waker.will_wake(cx.waker()) {
                        waker.clone_from(cx.waker());
                    }
                }
            }
            _ => {
                let key = ring.waiting.insert(cx.waker().clone());
                self.registered = Some((round, key));
            }
        }
        Poll::Pending
    }
}

impl Drop for ChangeReceiver {
    fn drop(&mut self) {
        // A receiver dropped while waiting takes its waker out, so watches
        // opened and dropped on a quiet key leave nothing behind.
        if let Some((round, key)) = self.registered {
            let mut ring = self.fanout.ring();
            if ring.round == round {
                ring.waiting.try_remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker;

    fn change(version: u64) -> Change {
        Change {
            key: Arc::from("k"),
            value: None,
            version,
        }
    }

    fn poll(rx: &mut ChangeReceiver) -> Poll<Received> {
        rx.poll_recv(&mut Context::from_waker(&noop_waker()))
    }

    fn version(received: Poll<Received>) -> Option<u64> {
        match received {
            Poll::Ready(Received::Change(change)) => Some(change.version),
            _ => None,
        }
    }

    #[test]
    fn each_receiver_reads_every_change_in_order() {
        let fanout = Fanout::new(4);
        let (mut a, mut b) = (fanout.subscribe(), fanout.subscribe());
        assert!(poll(&mut a).is_pending());
        for v in 1..=3 {
            fanout.send(change(v));
        }
        for rx in [&mut a, &mut b] {
            assert_eq!(
                (0..3).map(|_| version(poll(rx))).collect::<Vec<_>>(),
                [Some(1), Some(2), Some(3)]
            );
            assert!(poll(rx).is_pending());
        }
        assert_eq!(fanout.receiver_count(), 2);
    }

    #[test]
    fn a_receiver_past_the_ring_says_how_much_it_missed() {
        let fanout = Fanout::new(2);
        let mut rx = fanout.subscribe();
        for v in 1..=5 {
            fanout.send(change(v));
        }
        assert!(matches!(poll(&mut rx), Poll::Ready(Received::Lagged(3))));
        assert_eq!(version(poll(&mut rx)), Some(4));
        assert_eq!(version(poll(&mut rx)), Some(5));
    }

    #[test]
    fn waiting_receivers_are_registered_once_and_leave_with_their_drop() {
        let fanout = Fanout::new(2);
        let mut receivers: Vec<_> = (0..10).map(|_| fanout.subscribe()).collect();
        for rx in &mut receivers {
            assert!(poll(rx).is_pending());
            assert!(poll(rx).is_pending());
        }
        assert_eq!(fanout.ring().waiting.len(), 10);
        receivers.truncate(4);
        assert_eq!(fanout.ring().waiting.len(), 4);
        fanout.send(change(1));
        assert_eq!(fanout.ring().waiting.len(), 0);
    }
}
