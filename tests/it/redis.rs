//! The conformance suite against the real Redis that `scripts/servers`
//! starts (`KV_REDIS_ADDR`), each case in a namespace of its own as well as
//! under its own prefix.

use crate::conformance;
use crate::support;

use std::time::Duration;

use conformance::{BackendTraits, Ctx};

/// Redis's differences the contract allows.
const REDIS: BackendTraits = BackendTraits {
    coalesces_changes: false,
    min_ttl: Duration::from_millis(100),
    // Deadlines are exact for reads; the `Delete` of an expired key is logged
    // by the next sweep (every 250 ms) or write of it.
    ttl_slack: Duration::from_secs(1),
    txn_limit: None,
    release_lag: Duration::ZERO,
};

async fn redis_ctx(case: &str) -> Option<Ctx> {
    let addr = support::server_addr("KV_REDIS_ADDR", case)?;
    let url = format!("redis://{addr}?lock_ttl=3s");
    let store = kvmesh::connect(&url).await.expect("redis:// opens");
    let other = kvmesh::connect(&url).await.expect("redis:// opens");
    Some(Ctx::new(store, case, REDIS).with_other(other))
}

conformance::suite!(
    factory = redis_ctx,
    test = tokio::test(flavor = "multi_thread", worker_threads = 2)
);
