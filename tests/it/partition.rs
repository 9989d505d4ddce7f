//! A lock holder cut off by a partition (the fault proxy drops every packet
//! and leaves the connections open) with a request timeout far above the
//! lock TTL: it must learn it lost the lock strictly before anyone else can
//! take it, and within the TTL of the cut; its prepared guarded write is
//! refused once the partition heals. The same for a discovery registration.
//! A cache cut off from its store serves its last copy, says it is stale,
//! and catches up once the store is back.
//! On Consul, etcd, Redis and ZooKeeper, each against its real server.

use crate::support;

use std::time::Duration;

use bytes::Bytes;
use kvmesh::{Store, Txn, TxnResult};
use support::proxy::FaultProxy;
use support::{server_addr, unique};
use tokio::time::Instant;

/// The lock TTL of these cases, and a request timeout far above it.
const LOCK_TTL: Duration = Duration::from_secs(3);
const OPTIONS: &str = "lock_ttl=3s&timeout=40s";

macro_rules! on_backends {
    ($($case:ident),* $(,)?) => {
        #[cfg(feature = "consul")]
        mod consul {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(addr) = super::server_addr("KV_CONSUL_ADDR", stringify!($case)) else {
                        return;
                    };
                    super::$case("consul", &addr).await;
                }
            )*
        }
        #[cfg(feature = "etcd")]
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(addr) = super::server_addr("KV_ETCD35_ADDR", stringify!($case)) else {
                        return;
                    };
                    super::$case("etcd", &addr).await;
                }
            )*
        }
        #[cfg(feature = "grpc")]
        mod etcd_grpc {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(addr) = super::server_addr("KV_ETCD35_ADDR", stringify!($case)) else {
                        return;
                    };
                    super::$case("etcd+grpc", &addr).await;
                }
            )*
        }
        #[cfg(feature = "redis")]
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(addr) = super::server_addr("KV_REDIS_ADDR", stringify!($case)) else {
                        return;
                    };
                    super::$case("redis", &addr).await;
                }
            )*
        }
        #[cfg(feature = "zookeeper")]
        mod zookeeper {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(addr) = super::server_addr("KV_ZOOKEEPER_ADDR", stringify!($case)) else {
                        return;
                    };
                    super::$case("zk", &addr).await;
                }
            )*
        }
    };
}

on_backends!(
    a_partitioned_holder_knows_first,
    a_partitioned_registration_knows_in_time,
    a_cache_serves_through_an_outage
);

/// A store at `addr` (`etcd+grpc`: etcd with `transport=grpc`).
async fn connect(scheme: &str, addr: &str) -> std::sync::Arc<dyn Store> {
    let url = match scheme {
        "etcd" => format!("etcd://{addr}?transport=http&{OPTIONS}"),
        "etcd+grpc" => format!("etcd://{addr}?transport=grpc&{OPTIONS}"),
        _ => format!("{scheme}://{addr}?{OPTIONS}"),
    };
    kvmesh::connect(&url).await.expect("connect")
}

async fn a_partitioned_holder_knows_first(scheme: &str, addr: &str) {
    let proxy = FaultProxy::start(addr).await;
    let holder_store = connect(scheme, &proxy.addr).await;
    let other = connect(scheme, addr).await;
    let key = unique("partitioned-holder") + "lock";
    let data = key.clone() + "-data";
    let lock = holder_store
        .acquire(&key, Bytes::from("holder"))
        .await
        .unwrap();
    let guarded = Txn::new()
        .check_held(&lock)
        .put(&data, Bytes::from("stale"));
    // Let a renewal or two go through first: the cut falls mid-lease.
    tokio::time::sleep(LOCK_TTL / 2).await;

    proxy.partition();
    let cut = Instant::now();
    let contender = {
        let (other, key) = (other.clone(), key.clone());
        tokio::spawn(async move {
            loop {
                if let Some(lock) = other.try_acquire(&key, Bytes::from("other")).await.unwrap() {
                    return (Instant::now(), lock);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::timeout(LOCK_TTL * 3, lock.lost())
        .await
        .expect("the partitioned holder learns it lost the lock");
    let lost = Instant::now();
    let (acquired, next) = tokio::time::timeout(LOCK_TTL * 4, contender)
        .await
        .expect("the other takes the lock once the server frees it")
        .unwrap();
    eprintln!(
        "{scheme}: lock_ttl {LOCK_TTL:?}, timeout 40s: lost() {:?} after the cut, the other acquired {:?} after it",
        lost - cut,
        acquired - cut
    );
    assert!(
        lost < acquired,
        "two holders: the other acquired before lost()"
    );
    assert!(
        lost - cut <= LOCK_TTL,
        "lost() {:?} after the cut",
        lost - cut
    );

    proxy.heal();
    // The former holder's prepared write is refused, and writes nothing.
    let deadline = Instant::now() + Duration::from_secs(60);
    let result = loop {
        match holder_store.txn(guarded.clone()).await {
            Ok(result) => break result,
            // The first requests after the heal may still meet a frozen
            // connection's end.
            Err(error) => assert!(Instant::now() < deadline, "{error}"),
        }
    };
    assert_eq!(
        result,
        TxnResult::Conflict {
            keys: vec![key.clone()]
        }
    );
    assert!(other.get(&data).await.unwrap().is_none());
    next.release().await.unwrap();
}

/// A registration behind a partition says it is lost at the latest when
/// its key may be gone from the store, whatever the request timeout.
async fn a_partitioned_registration_knows_in_time(scheme: &str, addr: &str) {
    use kvmesh::discovery::{Discovery, Node};
    let proxy = FaultProxy::start(addr).await;
    let root = unique("partitioned-registration");
    let discovery = Discovery::with_root(connect(scheme, &proxy.addr).await, root);
    // Consul's shortest session TTL on the test servers is 1 s.
    let ttl = Duration::from_secs(3);
    let node = Node::new("n1", "10.0.0.1:1");
    let registration = discovery.register("svc", node, ttl).await.unwrap();
    tokio::time::sleep(ttl / 2).await;
    proxy.partition();
    let cut = Instant::now();
    tokio::time::timeout(ttl * 3, registration.lost())
        .await
        .expect("the partitioned registration learns it is lost");
    eprintln!(
        "{scheme}: registration ttl {ttl:?}, timeout 40s: lost() {:?} after the cut",
        cut.elapsed()
    );
    assert!(
        cut.elapsed() <= ttl,
        "lost() {:?} after the cut",
        cut.elapsed()
    );
    assert!(!registration.is_registered());
    proxy.heal();
    drop(registration);
}

/// A cache through a store that is cut off keeps serving the last copy,
/// says it is stale, and catches up (with what changed meanwhile) after.
async fn a_cache_serves_through_an_outage(scheme: &str, addr: &str) {
    use futures::StreamExt;
    use kvmesh::cache::{Cache, CacheEvent, PROBE_INTERVAL};
    let proxy = FaultProxy::start(addr).await;
    let url = match scheme {
        "etcd" => format!("etcd://{}?transport=http&timeout=1s", proxy.addr),
        "etcd+grpc" => format!("etcd://{}?transport=grpc&timeout=1s", proxy.addr),
        _ => format!("{scheme}://{}?timeout=1s", proxy.addr),
    };
    let proxied = kvmesh::connect(&url)
        .await
        .expect("connect through the proxy");
    let direct = connect(scheme, addr).await;
    let prefix = unique("cache-outage");
    let key = |name: &str| format!("{prefix}{name}");
    for name in ["kept", "changed", "deleted"] {
        direct.put(&key(name), Bytes::from("1")).await.unwrap();
    }
    let cache = Cache::open(proxied, &prefix).await.unwrap();
    let mut changes = cache.changes();
    let before = cache.list();
    assert_eq!(before.len(), 3);

    proxy.cut();
    direct.put(&key("changed"), Bytes::from("2")).await.unwrap();
    direct.delete(&key("deleted")).await.unwrap();
    direct.put(&key("new"), Bytes::from("1")).await.unwrap();
    let deadline = Instant::now() + PROBE_INTERVAL * 2 + Duration::from_secs(5);
    while !cache.is_stale() {
        assert!(
            Instant::now() < deadline,
            "the cut-off cache never said it is stale"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cache.list(), before, "the last copy is served meanwhile");

    proxy.restore();
    let last = direct.get(&key("new")).await.unwrap().unwrap().version;
    tokio::time::timeout(Duration::from_secs(60), cache.wait_for(last))
        .await
        .expect("the cache catches up after the outage")
        .unwrap();
    assert_eq!(cache.list(), direct.get_range(&prefix).await.unwrap());
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let change = tokio::time::timeout(Duration::from_secs(20), changes.next())
            .await
            .expect("the changes are reported")
            .expect("a live stream")
            .unwrap();
        seen.push(match change {
            CacheEvent::Put { pair, .. } => format!("put {}", pair.key.trim_start_matches(&prefix)),
            CacheEvent::Delete { previous, .. } => {
                format!("delete {}", previous.key.trim_start_matches(&prefix))
            }
            other => panic!("{other:?}"),
        });
    }
    seen.sort();
    assert_eq!(seen, ["delete deleted", "put changed", "put new"]);
    let deadline = Instant::now() + PROBE_INTERVAL * 2 + Duration::from_secs(5);
    while cache.is_stale() {
        assert!(
            Instant::now() < deadline,
            "still stale after the store came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
