//! Network faults between kvmesh and a real server, through the loopback
//! fault proxy (`tests/support/proxy.rs`), on Consul and on etcd (3.5, over
//! its gateway and over gRPC):
//! - a reply cut mid-body: a read is retried and succeeds; a write (a plain
//!   put or delete too) fails with `Error::OutcomeUnknown` (and was in fact
//!   applied, once);
//! - a stalled connection (open, silent): a watch notices within its
//!   `stall_timeout`, opens a new connection and delivers the change.

use crate::support;

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use kvmesh::{Error, KvEvent, Store, WatchOptions};
use support::proxy::FaultProxy;
use support::{server_addr, unique};

/// Each case, on each backend.
macro_rules! on_backends {
    ($($case:ident),* $(,)?) => {
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
    };
}

/// Each case on etcd over gRPC (the proxy cuts an HTTP/2 reply before its
/// first DATA frame).
#[cfg(feature = "grpc")]
macro_rules! on_grpc {
    ($($case:ident),* $(,)?) => {
        mod etcd_grpc {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(addr) = super::server_addr("KV_ETCD35_ADDR", stringify!($case)) else {
                        return;
                    };
                    super::$case(super::ETCD_GRPC, &addr).await;
                }
            )*
        }
    };
}

#[cfg(feature = "grpc")]
on_grpc!(
    cut_reply_to_a_read_is_retried,
    cut_reply_to_a_write_is_outcome_unknown,
    stalled_watch_is_reissued,
    a_waiting_permit_rides_out_an_outage
);

/// The scheme these cases take for etcd over gRPC.
const ETCD_GRPC: &str = "etcd+grpc";

/// The URL of a store at `addr` (`etcd`: over the JSON gateway;
/// `etcd+grpc`: over gRPC).
fn url(scheme: &str, addr: &str, options: &str) -> String {
    match scheme {
        "etcd" => format!("etcd://{addr}?transport=http&{options}"),
        ETCD_GRPC => format!("etcd://{addr}?transport=grpc&{options}"),
        _ => format!("{scheme}://{addr}?{options}"),
    }
}

on_backends!(
    cut_reply_to_a_read_is_retried,
    cut_reply_to_a_write_is_outcome_unknown,
    stalled_watch_is_reissued,
    a_waiting_permit_rides_out_an_outage,
);

/// A store through a fresh proxy, and a direct one.
async fn stores(
    scheme: &str,
    addr: &str,
    options: &str,
) -> (FaultProxy, std::sync::Arc<dyn Store>) {
    let proxy = FaultProxy::start(addr).await;
    let proxied = kvmesh::connect(&url(scheme, &proxy.addr, options))
        .await
        .expect("connect through the proxy");
    (proxy, proxied)
}

async fn direct(scheme: &str, addr: &str) -> std::sync::Arc<dyn Store> {
    kvmesh::connect(&url(scheme, addr, ""))
        .await
        .expect("connect")
}

/// Drops the pooled connections, waits until the client has seen them close,
/// then arms a cut of the next reply.
async fn cut_next_reply(proxy: &FaultProxy) {
    proxy.cut();
    proxy.restore();
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.cut_next_replies(1);
}

async fn cut_reply_to_a_read_is_retried(scheme: &str, addr: &str) {
    let (proxy, store) = stores(scheme, addr, "timeout=5s").await;
    let key = format!("{}k", unique("cut-read"));
    store.put(&key, Bytes::from("v1")).await.unwrap();
    cut_next_reply(&proxy).await;
    let pair = store.get(&key).await.expect("the read is retried");
    assert_eq!(pair.expect("present").value, Bytes::from("v1"));
    cut_next_reply(&proxy).await;
    let listing = store.get_range(&key).await.expect("a list is retried");
    assert_eq!(listing.len(), 1);
}

async fn cut_reply_to_a_write_is_outcome_unknown(scheme: &str, addr: &str) {
    let (proxy, store) = stores(scheme, addr, "timeout=5s").await;
    let check = direct(scheme, addr).await;
    let key = format!("{}k", unique("cut-write"));
    store.put(&key, Bytes::from("v1")).await.unwrap();

    let expect_unknown = |what: &str, result: kvmesh::Result<bool>| match result {
        Err(error @ Error::OutcomeUnknown { .. }) => {
            assert!(!error.is_retryable(), "{error}");
            assert!(
                error.to_string().contains("may or may not"),
                "the error says so: {error}"
            );
        }
        other => panic!("{what}: expected OutcomeUnknown, got {other:?}"),
    };
    // A plain put is not repeated either: its second run would undo a
    // write another client made between the two.
    cut_next_reply(&proxy).await;
    match store.put(&key, Bytes::from("plain")).await {
        Err(error @ Error::OutcomeUnknown { .. }) => assert!(!error.is_retryable(), "{error}"),
        other => panic!("put: expected OutcomeUnknown, got {other:?}"),
    }
    let now = check.get(&key).await.unwrap().expect("present");
    assert_eq!(now.value, Bytes::from("plain"), "it was applied");
    // A conditional write is not repeated: its second try would fail its
    // own condition and misreport the outcome.
    let version = check.get(&key).await.unwrap().expect("present").version;
    cut_next_reply(&proxy).await;
    expect_unknown(
        "atomic_put",
        store
            .atomic_put(&key, Bytes::from("v2"), Some(version))
            .await,
    );
    // The server got it: it was applied, exactly once.
    let now = check.get(&key).await.unwrap().expect("present");
    assert_eq!(now.value, Bytes::from("v2"));

    cut_next_reply(&proxy).await;
    expect_unknown(
        "atomic_delete",
        store.atomic_delete(&key, now.version).await,
    );
    assert!(check.get(&key).await.unwrap().is_none(), "it was applied");

    check.put(&key, Bytes::from("v3")).await.unwrap();
    cut_next_reply(&proxy).await;
    match store.delete(&key).await {
        Err(error @ Error::OutcomeUnknown { .. }) => assert!(!error.is_retryable(), "{error}"),
        other => panic!("delete: expected OutcomeUnknown, got {other:?}"),
    }
    assert!(check.get(&key).await.unwrap().is_none(), "it was applied");
}

/// Waits up to `limit` for the next event.
async fn next_event(watch: &mut kvmesh::Watch, limit: Duration) -> KvEvent {
    tokio::time::timeout(limit, watch.next())
        .await
        .expect("an event in time")
        .expect("the watch goes on")
        .expect("no error")
}

async fn stalled_watch_is_reissued(scheme: &str, addr: &str) {
    let (proxy, store) = stores(scheme, addr, "timeout=2s&stall_timeout=2s").await;
    let writer = direct(scheme, addr).await;
    let dir = unique("stall");
    let key = format!("{dir}k");
    writer.put(&key, Bytes::from("1")).await.unwrap();
    let mut key_watch = store.watch(&key, WatchOptions::default()).await.unwrap();
    let mut range_watch = store
        .watch_range(&dir, WatchOptions::default())
        .await
        .unwrap();
    next_event(&mut key_watch, Duration::from_secs(10)).await;
    next_event(&mut range_watch, Duration::from_secs(10)).await;
    // One change seen live: both connections are open upstream.
    writer.put(&key, Bytes::from("live")).await.unwrap();
    next_event(&mut key_watch, Duration::from_secs(10)).await;
    next_event(&mut range_watch, Duration::from_secs(10)).await;
    // Let both long polls / streams be in flight again, then freeze them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.stall();
    writer.put(&key, Bytes::from("2")).await.unwrap();
    // A stall is noticed after stall_timeout (+ Consul's jitter and the
    // request timeout): well within 30 s.
    for watch in [&mut key_watch, &mut range_watch] {
        match next_event(watch, Duration::from_secs(30)).await {
            KvEvent::Put(pair) => assert_eq!(pair.value, Bytes::from("2")),
            other => panic!("expected the new value, got {other:?}"),
        }
    }
    // And they go on after the re-issue.
    writer.put(&key, Bytes::from("3")).await.unwrap();
    for watch in [&mut key_watch, &mut range_watch] {
        match next_event(watch, Duration::from_secs(30)).await {
            KvEvent::Put(pair) => assert_eq!(pair.value, Bytes::from("3")),
            other => panic!("expected the new value, got {other:?}"),
        }
    }
}

/// A registration whose refreshes keep failing says so (`lost`,
/// `last_error`), and is registered again once the store is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_that_cannot_refresh_is_lost_then_back() {
    registration_lost_then_back("etcd").await;
}

#[cfg(feature = "grpc")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_that_cannot_refresh_is_lost_then_back_over_grpc() {
    registration_lost_then_back(ETCD_GRPC).await;
}

async fn registration_lost_then_back(scheme: &str) {
    use kvmesh::discovery::{Discovery, Node};
    let test = "a_registration_that_cannot_refresh_is_lost_then_back";
    let Some(addr) = server_addr("KV_ETCD35_ADDR", test) else {
        return;
    };
    let (proxy, store) = stores(scheme, &addr, "timeout=1s").await;
    let root = unique(test);
    let discovery = Discovery::with_root(store, root.clone());
    let observer = Discovery::with_root(direct(scheme, &addr).await, root);
    let ttl = Duration::from_secs(2);
    let node = Node::new("n1", "10.0.0.1:1");
    let registration = discovery.register("svc", node.clone(), ttl).await.unwrap();
    assert!(registration.is_registered());
    proxy.cut();
    // Lost once a whole TTL has gone without a refresh: within TTL, a
    // refresh period and a request timeout.
    tokio::time::timeout(Duration::from_secs(6), registration.lost())
        .await
        .expect("lost while the store is cut off");
    assert!(!registration.is_registered());
    let error = registration.last_error().expect("the refresh's error");
    assert!(
        matches!(
            error,
            Error::Unreachable { .. } | Error::OutcomeUnknown { .. } | Error::Timeout { .. }
        ),
        "{error:?}"
    );
    proxy.restore();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !registration.is_registered() {
        assert!(tokio::time::Instant::now() < deadline, "never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(registration.last_error().map(|e| e.to_string()), None);
    assert_eq!(observer.members("svc").await.unwrap(), [node]);
    registration.deregister().await.unwrap();
    assert!(observer.members("svc").await.unwrap().is_empty());
}

/// A semaphore waiter cut off from the store keeps waiting, and takes the
/// permit once the store is back and the holder lets go.
async fn a_waiting_permit_rides_out_an_outage(scheme: &str, addr: &str) {
    use kvmesh::semaphore::Semaphore;
    let (proxy, proxied) = stores(scheme, addr, "timeout=1s").await;
    let key = unique("permit-outage") + "pool";
    let holder = Semaphore::new(direct(scheme, addr).await, &key, 1);
    let permit = holder.acquire(Bytes::from("holder")).await.unwrap();
    let waiter = Semaphore::new(proxied, &key, 1);
    let waiting = tokio::spawn(async move { waiter.acquire(Bytes::from("waiter")).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    if waiting.is_finished() {
        panic!("the waiter gave up during the outage: {:?}", waiting.await);
    }
    proxy.restore();
    permit.release().await.unwrap();
    let taken = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the waiter gets the permit after the outage")
        .unwrap()
        .unwrap();
    assert_eq!(holder.holders().await.unwrap(), [Bytes::from("waiter")]);
    taken.release().await.unwrap();
}
