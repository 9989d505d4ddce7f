//! The conformance suite against both real etcd servers that
//! `scripts/servers` starts: 3.4 (`KV_ETCD_ADDR`) and 3.5 (`KV_ETCD35_ADDR`),
//! through the JSON gateway and (with the `grpc` feature) over gRPC.

use crate::conformance;
use crate::support;

use std::time::Duration;

use conformance::{BackendTraits, Ctx};

/// etcd's differences the contract allows.
const ETCD: BackendTraits = BackendTraits {
    coalesces_changes: false,
    // etcd raises shorter lease TTLs to about 2 s.
    min_ttl: Duration::from_secs(2),
    // Leases are checked for expiry every 500 ms; allow for a slow machine.
    ttl_slack: Duration::from_secs(3),
    txn_limit: Some(128),
    release_lag: Duration::from_secs(1),
};

async fn ctx(var: &str, case: &str) -> Option<Ctx> {
    ctx_over(var, case, "http").await
}
// (`etcd34`/`etcd35` pin the gateway; `etcd34_grpc`/`etcd35_grpc` gRPC.)

/// A context whose stores reach etcd over `transport` (`http` or `grpc`).
async fn ctx_over(var: &str, case: &str, transport: &str) -> Option<Ctx> {
    let addr = support::server_addr(var, case)?;
    let url = format!("etcd://{addr}?lock_ttl=3s&transport={transport}");
    let store = kvmesh::connect(&url).await.expect("etcd:// opens");
    let other = kvmesh::connect(&url).await.expect("etcd:// opens");
    Some(Ctx::new(store, case, ETCD).with_other(other))
}

mod etcd34 {
    async fn etcd34_ctx(case: &str) -> Option<crate::etcd::Ctx> {
        crate::etcd::ctx("KV_ETCD_ADDR", case).await
    }
    crate::conformance::suite!(
        factory = etcd34_ctx,
        test = tokio::test(flavor = "multi_thread", worker_threads = 2)
    );
}

mod etcd35 {
    async fn etcd35_ctx(case: &str) -> Option<crate::etcd::Ctx> {
        crate::etcd::ctx("KV_ETCD35_ADDR", case).await
    }
    crate::conformance::suite!(
        factory = etcd35_ctx,
        test = tokio::test(flavor = "multi_thread", worker_threads = 2)
    );
}

#[cfg(feature = "grpc")]
mod etcd34_grpc {
    async fn etcd34_grpc_ctx(case: &str) -> Option<crate::etcd::Ctx> {
        crate::etcd::ctx_over("KV_ETCD_ADDR", case, "grpc").await
    }
    crate::conformance::suite!(
        factory = etcd34_grpc_ctx,
        test = tokio::test(flavor = "multi_thread", worker_threads = 2)
    );
}

#[cfg(feature = "grpc")]
mod etcd35_grpc {
    async fn etcd35_grpc_ctx(case: &str) -> Option<crate::etcd::Ctx> {
        crate::etcd::ctx_over("KV_ETCD35_ADDR", case, "grpc").await
    }
    crate::conformance::suite!(
        factory = etcd35_grpc_ctx,
        test = tokio::test(flavor = "multi_thread", worker_threads = 2)
    );
}
