//! The conformance suite against the real Consul that `scripts/servers`
//! starts (`KV_CONSUL_ADDR`), plus Consul-specific cases.

use crate::conformance;
use crate::support;

use std::time::Duration;

use conformance::{BackendTraits, Ctx};

/// Consul's differences the contract allows.
const CONSUL: BackendTraits = BackendTraits {
    coalesces_changes: true,
    // The test agent runs with session_ttl_min = 1s (production: 10s).
    min_ttl: Duration::from_secs(1),
    // A TTL key lives until up to twice its TTL (session invalidation).
    ttl_slack: Duration::from_secs(4),
    txn_limit: Some(64),
    release_lag: Duration::from_secs(1),
};

fn consul_url(test: &str) -> Option<String> {
    support::server_addr("KV_CONSUL_ADDR", test).map(|addr| format!("consul://{addr}?lock_ttl=3s"))
}

async fn consul_ctx(case: &str) -> Option<Ctx> {
    let url = consul_url(case)?;
    let store = kvmesh::connect(&url).await.expect("consul:// opens");
    let other = kvmesh::connect(&url).await.expect("consul:// opens");
    Some(Ctx::new(store, case, CONSUL).with_other(other))
}

conformance::suite!(
    factory = consul_ctx,
    test = tokio::test(flavor = "multi_thread", worker_threads = 2)
);

/// A TTL write of a key a lock holds is refused as such (not as a bad
/// argument), and leaves the lock and its value alone.
#[tokio::test]
async fn a_ttl_write_of_a_locked_key_says_a_lock_holds_it() {
    use kvmesh::{Bytes, Error, PutOptions};
    let Some(ctx) = consul_ctx("a_ttl_write_of_a_locked_key_says_a_lock_holds_it").await else {
        return;
    };
    let key = ctx.key("locked");
    let lock = ctx
        .store
        .acquire(&key, Bytes::from("holder"))
        .await
        .unwrap();
    let ttl = PutOptions::ttl(Duration::from_secs(30));
    match ctx.other.put_with(&key, Bytes::from("ttl"), ttl).await {
        Err(error @ Error::HeldByLock { .. }) => assert!(error.to_string().contains("lock")),
        other => panic!("expected HeldByLock, got {other:?}"),
    }
    assert_eq!(ctx.other.get(&key).await.unwrap().unwrap().value, "holder");
    assert!(!lock.is_lost());
    lock.release().await.unwrap();
}
