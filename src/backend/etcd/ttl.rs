//! The leases of the TTL keys this store wrote.
//!
//! Each TTL write gets a lease of its own, attached to that one key. When a
//! write replaces or deletes a value, etcd says which lease that value had
//! (`prev_kv`); if it is one of these, nothing uses it any more and it is
//! revoked, so leases do not pile up. The server decides which value was
//! replaced, so concurrent writes of one key can never revoke the lease of
//! the value that won. A lease is forgotten once its TTL has certainly run
//! out (it deleted its key, or was replaced and holds nothing).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Beyond its TTL, how long a lease is kept in mind (etcd extends leases
/// on a leader change).
const SLACK: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub(super) struct TtlLeases {
    /// Lease id → when it has expired at the latest.
    leases: Mutex<HashMap<i64, Instant>>,
}

impl TtlLeases {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Instant>> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        leases.retain(|_, expires| *expires > now);
        leases
    }

    /// Records a lease granted for a TTL key, before the key is written.
    pub(super) fn add(&self, lease: i64, ttl: Duration) {
        self.lock().insert(lease, Instant::now() + ttl + SLACK);
    }

    /// True when some write may replace a value that has one of these
    /// leases: only then does a write ask etcd for the replaced value.
    pub(super) fn any(&self) -> bool {
        !self.lock().is_empty()
    }

    /// Forgets those of `leases` that are ours and returns them: the caller
    /// revokes them.
    pub(super) fn take_ours(&self, leases: impl IntoIterator<Item = i64>) -> Vec<i64> {
        let mut ours = self.lock();
        leases
            .into_iter()
            .filter(|lease| ours.remove(lease).is_some())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn only_our_leases_are_handed_back_once_and_expired_ones_are_forgotten() {
        let leases = TtlLeases::default();
        assert!(!leases.any());
        leases.add(7, Duration::from_secs(5));
        leases.add(8, Duration::from_secs(60));
        assert!(leases.any());
        assert_eq!(leases.take_ours([7, 9, 0]), [7]);
        assert!(leases.take_ours([7]).is_empty());
        tokio::time::advance(Duration::from_secs(91)).await;
        assert!(!leases.any());
        assert!(leases.take_ours([8]).is_empty());
    }
}
