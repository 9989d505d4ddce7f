//! The conformance suite against the real ZooKeeper that `scripts/servers`
//! starts (`KV_ZOOKEEPER_ADDR`), each case under its own prefix.

use crate::conformance;
use crate::support;

use std::time::Duration;

use conformance::{BackendTraits, Ctx};

/// ZooKeeper's differences the contract allows.
const ZOOKEEPER: BackendTraits = BackendTraits {
    // A watch reads the state again after each notification.
    coalesces_changes: true,
    min_ttl: Duration::from_millis(100),
    // The server removes expired TTL nodes on its container check, every
    // second on the test server (`znode.container.checkIntervalMs`).
    ttl_slack: Duration::from_secs(2),
    txn_limit: Some(128),
    release_lag: Duration::ZERO,
};

async fn zookeeper_ctx(case: &str) -> Option<Ctx> {
    let addr = support::server_addr("KV_ZOOKEEPER_ADDR", case)?;
    let url = format!("zk://{addr}?lock_ttl=3s");
    let store = kvmesh::connect(&url).await.expect("zk:// opens");
    let other = kvmesh::connect(&url).await.expect("zk:// opens");
    Some(Ctx::new(store, case, ZOOKEEPER).with_other(other))
}

conformance::suite!(
    factory = zookeeper_ctx,
    test = tokio::test(flavor = "multi_thread", worker_threads = 2)
);
