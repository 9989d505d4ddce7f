//! The store's budget of blocking queries.
//!
//! Consul refuses a client more than `limits.http_max_conns_per_client`
//! connections (200 by default): past it, every new connection gets a 429
//! and is closed, so the store's plain reads and writes fail too. Blocking
//! queries are what could reach that limit, so a store runs at most
//! [`MAX_LONG_POLLS`] of them at once.
//!
//! A query abandoned mid-flight (its watch dropped, its `acquire` cancelled)
//! still counts: Consul does not notice the closed connection and keeps the
//! query, and its connection, until its `wait` ends or its key changes
//! (checked against Consul 1.22: the server side sits in `CLOSE_WAIT`). It
//! is therefore *parked* until that deadline, with no task or socket behind
//! it. The first [`MAX_PARKED`] parked queries have an allowance of their
//! own, so dropping watches does not hold up new ones; beyond it, a parked
//! query keeps its slot until Consul ends it. A store thus holds at most
//! `MAX_LONG_POLLS + MAX_PARKED` (112) blocking queries at Consul.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Blocking queries in flight per store, at most.
pub(super) const MAX_LONG_POLLS: usize = 64;
/// Abandoned queries Consul may still hold beyond those, at most.
const MAX_PARKED: usize = 48;
/// The longest `wait` a blocking query is given. An abandoned query holds a
/// connection at Consul for this long, so it is kept well below Consul's
/// 5-minute default; an idle query costs one request per period.
pub(super) const MAX_WAIT: Duration = Duration::from_secs(60);
/// Beyond Consul's own jitter (`wait / 16`), the time a reply takes.
const NETWORK_SLACK: Duration = Duration::from_secs(1);

/// How long Consul may hold a blocking query given `wait`: it adds up to
/// `wait / 16` of jitter.
pub(super) fn longest_hold(wait: Duration) -> Duration {
    wait + wait / 16
}

#[derive(Debug)]
pub(super) struct LongPolls {
    slots: Arc<Semaphore>,
    /// Abandoned queries, with the instant Consul ends them, and the slot
    /// each keeps (`None`: it is within the allowance).
    parked: Mutex<Vec<(Instant, Option<OwnedSemaphorePermit>)>>,
}

impl Default for LongPolls {
    fn default() -> Self {
        LongPolls {
            slots: Arc::new(Semaphore::new(MAX_LONG_POLLS)),
            parked: Mutex::new(Vec::new()),
        }
    }
}

impl LongPolls {
    fn parked(&self) -> std::sync::MutexGuard<'_, Vec<(Instant, Option<OwnedSemaphorePermit>)>> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Frees the parked slots whose query Consul has ended; the earliest
    /// deadline of those still parked.
    fn release_ended(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut parked = self.parked();
        parked.retain(|(ends, _)| *ends > now);
        parked.iter().map(|(ends, _)| *ends).min()
    }

    /// Waits for a slot.
    pub(super) async fn slot(&self) -> LongPollSlot<'_> {
        loop {
            let next_release = self.release_ended();
            if let Ok(permit) = self.slots.clone().try_acquire_owned() {
                return self.wrap(permit);
            }
            let acquire = self.slots.clone().acquire_owned();
            let permit = match next_release {
                Some(at) => tokio::select! {
                    permit = acquire => permit,
                    _ = tokio::time::sleep_until(at) => continue,
                },
                None => acquire.await,
            };
            // The semaphore is never closed.
            if let Ok(permit) = permit {
                return self.wrap(permit);
            }
        }
    }

    fn wrap(&self, permit: OwnedSemaphorePermit) -> LongPollSlot<'_> {
        LongPollSlot {
            budget: self,
            permit: Some(permit),
            ends: None,
        }
    }

    /// True when no slot is free: other queries may be waiting for one.
    pub(super) fn contended(&self) -> bool {
        self.slots.available_permits() == 0
    }

    /// Parks an abandoned query's slot until Consul ends the query.
    fn park(&self, ends: Instant, permit: OwnedSemaphorePermit) {
        let mut parked = self.parked();
        let within_allowance = parked.iter().filter(|(_, p)| p.is_none()).count() < MAX_PARKED;
        // Within the allowance the slot is free at once (the permit drops).
        parked.push((ends, (!within_allowance).then_some(permit)));
    }

    #[cfg(test)]
    fn parked_count(&self) -> usize {
        self.parked().len()
    }
}

/// One slot of the budget, freed on drop, or parked if dropped while its
/// query is in flight.
#[derive(Debug)]
pub(super) struct LongPollSlot<'a> {
    budget: &'a LongPolls,
    permit: Option<OwnedSemaphorePermit>,
    /// While a query runs: when Consul ends it at the latest.
    ends: Option<Instant>,
}

impl LongPollSlot<'_> {
    /// Runs `query`, which Consul may hold for up to `wait` (plus jitter)
    /// unless its key changes. `wait: None` for a query that needs no
    /// parking if abandoned (it returns at once, or its abandonment itself
    /// changes its key).
    pub(super) async fn run<T>(
        &mut self,
        wait: Option<Duration>,
        query: impl Future<Output = T>,
    ) -> T {
        self.ends = wait.map(|w| Instant::now() + longest_hold(w) + NETWORK_SLACK);
        let output = query.await;
        self.ends = None;
        output
    }
}

impl Drop for LongPollSlot<'_> {
    fn drop(&mut self) {
        if let (Some(permit), Some(ends)) = (self.permit.take(), self.ends)
            && ends > Instant::now()
        {
            tracing::debug!("blocking query abandoned; its slot is parked until Consul ends it");
            self.budget.park(ends, permit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes a slot, starts a query Consul holds for `wait`, abandons it.
    async fn abandon(budget: &LongPolls, wait: Duration) {
        let mut slot = budget.slot().await;
        {
            let query = slot.run(Some(wait), std::future::pending::<()>());
            let _ = tokio::time::timeout(Duration::from_millis(5), query).await;
        }
        drop(slot);
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_queries_beyond_the_allowance_keep_their_slot_until_consul_ends_them() {
        let budget = LongPolls::default();
        let wait = Duration::from_secs(10);
        for _ in 0..MAX_PARKED {
            abandon(&budget, wait).await;
        }
        // Within the allowance: every slot is still free.
        assert_eq!(budget.slots.available_permits(), MAX_LONG_POLLS);
        let mut held = Vec::new();
        for _ in 0..MAX_LONG_POLLS - 1 {
            held.push(budget.slot().await);
        }
        abandon(&budget, wait).await;
        assert_eq!(budget.parked_count(), MAX_PARKED + 1);
        assert!(budget.contended());
        let started = Instant::now();
        let _slot = budget.slot().await;
        assert!(
            started.elapsed() >= longest_hold(wait) + NETWORK_SLACK - Duration::from_millis(10)
        );
        assert_eq!(budget.parked_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_or_unparked_query_frees_its_slot_at_once() {
        let budget = LongPolls::default();
        let mut slot = budget.slot().await;
        slot.run(Some(Duration::from_secs(60)), async {}).await;
        drop(slot);
        let mut slot = budget.slot().await;
        {
            let query = slot.run(None, std::future::pending::<()>());
            let _ = tokio::time::timeout(Duration::from_millis(5), query).await;
        }
        drop(slot);
        assert_eq!(budget.parked_count(), 0);
        assert_eq!(budget.slots.available_permits(), MAX_LONG_POLLS);
    }
}
