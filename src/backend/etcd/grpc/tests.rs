//! The hand-written messages against etcd itself: replies etcd sent over
//! gRPC, decoded with [`super::proto`], must say what the JSON gateway says
//! for the same reads (every field kvmesh uses, so a wrong tag shows), and
//! the requests must do what they say. Needs a real etcd (`KV_ETCD35_ADDR`
//! and `KV_ETCD_ADDR`, from `scripts/servers`).

use std::time::Duration;

use bytes::Bytes;

use super::Grpc;
use crate::backend::etcd::gateway::Gateway;
use crate::backend::etcd::transport::{Transport, WatchMessage};
use crate::backend::etcd::wire::{self, Compare, RequestOp, bytes};
use crate::http::{ConnectionLimits, HttpClient};

use crate::test_servers::server;

fn transports(addr: &str) -> (Gateway, Grpc) {
    let timeout = Duration::from_secs(10);
    let limits = ConnectionLimits {
        requests: 4,
        long_lived: 4,
    };
    let http = HttpClient::new(&[addr], Vec::new(), None, limits).unwrap();
    let grpc = Grpc::new(&[addr], timeout, None).unwrap();
    (Gateway::new(http, timeout), grpc)
}

fn unique(name: &str) -> String {
    format!("grpc-tags/{}/{name}", std::process::id())
}

/// Reads, writes, txns, leases and a watch on etcd 3.4 and 3.5: over gRPC
/// they give what the gateway gives.
#[tokio::test]
async fn grpc_replies_say_what_the_gateway_says() {
    for var in ["KV_ETCD35_ADDR", "KV_ETCD_ADDR"] {
        let Some(addr) = server(var) else { return };
        let (gateway, grpc) = transports(&addr);
        let key = unique(&format!("{var}/k"));
        // A key with a lease, written over gRPC.
        let grant = wire::LeaseGrantRequest { ttl: 60 };
        let lease = grpc.lease_grant(&grant, None).await.unwrap().unwrap();
        assert!(lease.id > 0 && lease.ttl >= 59, "{lease:?}");
        let put = wire::PutRequest {
            key: bytes(&key),
            value: Bytes::from_static(b"v\x00\xff"),
            lease: lease.id,
            prev_kv: true,
        };
        let written = grpc.put(&put, None).await.unwrap().unwrap();
        assert!(written.header.revision > 0 && written.prev_kv.is_none());
        let again = grpc.put(&put, None).await.unwrap().unwrap();
        let previous = again.prev_kv.expect("prev_kv asked for");
        assert_eq!(previous.lease, lease.id);
        // The same read both ways.
        let read = wire::RangeRequest {
            key: bytes(&key),
            ..wire::RangeRequest::default()
        };
        let over_grpc = grpc.range(&read, None).await.unwrap().unwrap();
        let over_gateway = gateway.range(&read, None).await.unwrap().unwrap();
        assert_eq!(over_grpc, over_gateway);
        let kv = &over_grpc.kvs[0];
        assert_eq!(
            (&kv.key[..], &kv.value[..], kv.lease),
            (key.as_bytes(), &b"v\x00\xff"[..], lease.id)
        );
        assert!(kv.create_revision > 0 && kv.mod_revision > kv.create_revision);
        // A txn: compares of each kind, a read in its branch.
        let txn = wire::TxnRequest {
            compare: vec![
                Compare::created_at(bytes(&key), kv.create_revision as u64),
                Compare::modified_at(bytes(&key), kv.mod_revision as u64),
                Compare::leased_by(bytes(&key), lease.id),
                Compare::present(bytes(&key)),
            ],
            success: vec![RequestOp::Range(read)],
            failure: vec![],
        };
        let committed = grpc.txn(&txn, None).await.unwrap().unwrap();
        assert!(committed.succeeded);
        let branch = committed.responses[0].response_range.as_ref().unwrap();
        assert_eq!(branch.kvs, over_gateway.kvs);
        // A watch from the first write: the put, then the lease's end.
        let watch = wire::WatchCreateRequest {
            key: bytes(&key),
            range_end: None,
            start_revision: kv.create_revision,
            progress_notify: false,
        };
        let mut events = grpc.watch(&watch, None).await.unwrap();
        let revoke = wire::LeaseIdRequest { id: lease.id };
        grpc.lease_revoke(&revoke, None).await.unwrap().unwrap();
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let message = tokio::time::timeout(Duration::from_secs(10), events.next())
                .await
                .expect("a watch reply in time")
                .unwrap()
                .expect("the watch goes on");
            let WatchMessage::Response(response) = message else {
                panic!("{message:?}");
            };
            seen.extend(response.events);
        }
        assert_eq!(seen[0].kind, None);
        assert_eq!(seen[0].kv.mod_revision, kv.create_revision);
        assert_eq!(seen[2].kind.as_deref(), Some("DELETE"));
        let alive = grpc.lease_keep_alive(&revoke, None).await.unwrap().unwrap();
        assert!(alive.result.is_some_and(|r| r.ttl <= 0), "a revoked lease");
        grpc.status(None).await.unwrap().unwrap();
    }
}

#[test]
fn a_deadline_is_a_timeout_and_an_answer_a_refusal() {
    use super::errors::{Failure, failure};
    let deadline = tonic::Status::from_error(Box::new(tonic::TimeoutExpired(())));
    assert!(matches!(failure(&deadline), Failure::TimedOut));
    let answer = tonic::Status::unavailable("etcdserver: request timed out");
    assert!(matches!(failure(&answer), Failure::Refused));
}
