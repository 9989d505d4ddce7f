//! The TTL sweeper: each store deletes the keys whose TTL passed (and
//! logs their `Delete`), whoever wrote them.

use std::sync::Weak;
use std::time::Duration;

use super::client::Client;

/// How often each store deletes the keys whose TTL passed (and logs their
/// `Delete`), whoever wrote them.
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// The most keys one sweep call deletes (`lua/sweep.lua`'s LIMIT).
const SWEEP_BATCH: u64 = 100;

/// Deletes keys whose TTL passed, logging each `Delete`; ends with the store.
pub(super) async fn sweep_expired_keys(client: Weak<Client>) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(client) = client.upgrade() else {
            return;
        };
        // Each call deletes at most a batch (a short script: Redis runs
        // nothing else meanwhile); a full batch means more are due, so the
        // next goes at once: 10,000 keys expiring together take about a
        // hundred short calls, not a hundred sweep periods.
        loop {
            match client.run::<u64>("sweep", &client.scripts.sweep, &[]).await {
                Ok(swept) if swept >= SWEEP_BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "redis TTL sweep failed; trying again");
                    break;
                }
            }
        }
    }
}
