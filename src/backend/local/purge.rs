//! The TTL purge task: one per store, asleep until the next expiry.

use std::sync::{Arc, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::Shared;

/// Deletes keys as their TTLs pass; ends when the store is gone.
pub(super) async fn purge_expired_keys(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let next = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let mut state = shared.write();
            state.purge_expired(Instant::now());
            state.next_expiry()
        };
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}
