//! Servers killed (`kill -9`) and started again while a key watch, a range
//! watch, a held lock, a waiting `acquire` and a burst of puts are live:
//! - one Consul agent (dev mode, so it comes back empty and is re-seeded) and
//!   one etcd 3.5 (same data dir);
//! - the 3-member etcd cluster and the 3-server Consul cluster of
//!   `scripts/servers up --cluster`, killing the leader, then a follower.
//!
//! The cases run one at a time (`SERIAL`): each kills a shared server.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use kvmesh::{Error, KvEvent, Lock, Store, Watch, WatchOptions};
use support::{server_addr, servers, unique};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

static SERIAL: Mutex<()> = Mutex::const_new(());

const TIMEOUT: Duration = Duration::from_secs(2);
const OPTIONS: &str = "timeout=2s&lock_ttl=2s&stall_timeout=5s";

/// What a run did, for the checks after the fault.
struct Live {
    store: Arc<dyn Store>,
    key: String,
    data: String,
    key_watch: Watch,
    range_watch: Watch,
    holder: Arc<Lock>,
    waiter: JoinHandle<(Lock, bool, Instant)>,
    burst: JoinHandle<Vec<String>>,
    stop_burst: tokio::sync::watch::Sender<bool>,
}

/// Sets up everything live on `url`.
async fn go_live(url: &str, case: &str) -> Live {
    let store = kvmesh::connect(url).await.expect("connect");
    let other = kvmesh::connect(url).await.expect("connect");
    let dir = unique(case);
    let key = format!("{dir}key");
    let data = format!("{dir}data/");
    let lock_key = format!("{dir}lock");
    store.put(&key, Bytes::from("start")).await.unwrap();
    store
        .put(&format!("{data}gone"), Bytes::from("x"))
        .await
        .unwrap();
    let mut key_watch = store.watch(&key, WatchOptions::default()).await.unwrap();
    let mut range_watch = store
        .watch_range(&data, WatchOptions::default())
        .await
        .unwrap();
    next(&mut key_watch).await;
    next(&mut range_watch).await;

    let holder = Arc::new(
        store
            .acquire(&lock_key, Bytes::from("holder"))
            .await
            .expect("the first holder"),
    );
    // The waiter notes whether the first holder had already seen its loss
    // (or let go) when the waiter got the lock.
    let first = Arc::downgrade(&holder);
    let waiter = tokio::spawn(async move {
        let lock = other
            .acquire(&lock_key, Bytes::from("waiter"))
            .await
            .expect("the waiter gets the lock in the end");
        let first_gone = first.upgrade().is_none_or(|l| l.is_lost());
        (lock, first_gone, Instant::now())
    });

    // A burst of puts that goes on through the fault; it returns the values
    // whose writes were acknowledged, in order.
    let (stop_burst, mut stop) = tokio::sync::watch::channel(false);
    let (writer, burst_key) = (store.clone(), key.clone());
    let burst = tokio::spawn(async move {
        let mut acknowledged = Vec::new();
        for i in 0.. {
            if *stop.borrow_and_update() {
                break;
            }
            let value = format!("burst-{i}");
            let started = Instant::now();
            match writer.put(&burst_key, Bytes::from(value.clone())).await {
                Ok(()) => acknowledged.push(value),
                Err(error) => {
                    // A write the fault cut off after it was sent may have
                    // been applied: never sent again, it says so.
                    assert!(
                        error.is_retryable() || matches!(error, Error::OutcomeUnknown { .. }),
                        "a typed error, retryable or of unknown outcome: {error}"
                    );
                    assert!(
                        started.elapsed() < TIMEOUT * 4,
                        "a failing call ends within its timeouts, not {:?}",
                        started.elapsed()
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        acknowledged
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    Live {
        store,
        key,
        data,
        key_watch,
        range_watch,
        holder,
        waiter,
        burst,
        stop_burst,
    }
}

async fn next(watch: &mut Watch) -> KvEvent {
    tokio::time::timeout(Duration::from_secs(60), watch.next())
        .await
        .expect("an event within 60 s")
        .expect("the watch goes on")
        .expect("no error: the watch recovers by itself")
}

/// Reads `watch` until `key` has `value`; returns the values seen on the way
/// (a Put's value, or "<deleted>") and checks versions only grow.
async fn until_value(watch: &mut Watch, key: &str, value: &str, monotonic: bool) -> Vec<String> {
    let mut seen = Vec::new();
    let mut last_version = 0;
    loop {
        let (this, version, text) = match next(watch).await {
            KvEvent::Put(pair) => (
                pair.key,
                pair.version,
                String::from_utf8_lossy(&pair.value).into_owned(),
            ),
            KvEvent::Delete { key, version } => (key, version, "<deleted>".into()),
        };
        if this != key {
            continue;
        }
        // A dev-mode Consul that restarts empty starts its indexes over.
        assert!(
            version > last_version || last_version == 0 || !monotonic,
            "versions only grow: {version} after {last_version}"
        );
        last_version = version;
        let done = text == value;
        seen.push(text);
        if done {
            return seen;
        }
    }
}

/// The checks once the servers are back: the burst stops, a final write is
/// seen by both watches, and the lock changed hands without overlap.
async fn after_recovery(live: Live, every_event: bool, reseed: bool) {
    let Live {
        store,
        key,
        data,
        mut key_watch,
        mut range_watch,
        holder,
        waiter,
        burst,
        stop_burst,
    } = live;
    if reseed {
        // A dev-mode Consul came back empty: the data dir gets new content.
        let reseeded = format!("{data}reseeded");
        support::put_until_done(&*store, &reseeded, "y", Duration::from_secs(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop_burst.send(true);
    let acknowledged = burst.await.expect("the burst task");
    support::put_until_done(&*store, &key, "final", Duration::from_secs(30)).await;
    support::put_until_done(
        &*store,
        &format!("{data}final"),
        "z",
        Duration::from_secs(30),
    )
    .await;

    let seen = until_value(&mut key_watch, &key, "final", !reseed).await;
    if every_event {
        // etcd: every acknowledged write, in order, and each write applied
        // once (no put is sent again once it may have reached the server).
        let mut once = std::collections::HashSet::new();
        for value in seen.iter().filter(|v| v.starts_with("burst-")) {
            assert!(once.insert(value), "{value} applied twice: {seen:?}");
        }
        let mut rest = seen.iter();
        for value in &acknowledged {
            assert!(
                rest.any(|v| v == value),
                "acknowledged write {value} missing from the watch: {seen:?}"
            );
        }
    }
    until_value(&mut range_watch, &format!("{data}final"), "z", !reseed).await;
    if reseed {
        let state = store.get_range(&data).await.unwrap();
        let keys: Vec<&str> = state.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [format!("{data}final"), format!("{data}reseeded")],
            "the state after the restart"
        );
    }

    // The lock: either the holder kept it (released now) or it saw its loss
    // before the waiter got it.
    let kept = !holder.is_lost();
    match Arc::try_unwrap(holder) {
        Ok(lock) if kept => lock.release().await.unwrap_or(()),
        Ok(lock) => drop(lock),
        Err(_) => panic!("the holder is shared"),
    }
    let (lock, holder_was_gone, acquired_at) =
        tokio::time::timeout(Duration::from_secs(60), waiter)
            .await
            .expect("the waiter gets the lock within 60 s")
            .expect("the waiter task");
    assert!(holder_was_gone, "two holders at once");
    assert!(acquired_at.elapsed() < Duration::from_secs(120));
    lock.release().await.expect("release");
}

/// While the only server is down: calls fail with a typed, retryable error
/// within the timeout, and the held lock reports its loss.
async fn while_down(live: &Live) {
    let started = Instant::now();
    let error = live
        .store
        .get(&live.key)
        .await
        .expect_err("the server is down");
    assert!(error.is_retryable(), "{error:?}");
    assert!(started.elapsed() < TIMEOUT * 3, "{:?}", started.elapsed());
    tokio::time::timeout(Duration::from_secs(20), live.holder.lost())
        .await
        .expect("the held lock reports its loss while its session/lease cannot be kept");
}

async fn one_server_restart(backend: &str, var: &str, server: &str, case: &str) {
    let Some(addr) = server_addr(var, case) else {
        return;
    };
    let _serial = SERIAL.lock().await;
    if std::env::var_os("KV_TRACE").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_test_writer()
            .try_init();
    }
    let url = support::over_etcd_transport(format!("{backend}://{addr}?{OPTIONS}"));
    let live = go_live(&url, case).await;
    servers(&["kill", server]);
    while_down(&live).await;
    servers(&["revive", server]);
    after_recovery(live, backend == "etcd", backend == "consul").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_agent_restart() {
    one_server_restart("consul", "KV_CONSUL_ADDR", "consul", "consul_agent_restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restart() {
    one_server_restart("etcd", "KV_ETCD35_ADDR", "etcd35", "etcd_restart").await;
}

/// Kills the cluster's leader, then a follower, each while everything is
/// live; calls keep working through the other members; each member rejoins.
async fn cluster_member_loss(backend: &str, var: &str, cluster: &str, case: &str) {
    let Some(addrs) = server_addr(var, case) else {
        return;
    };
    let _serial = SERIAL.lock().await;
    for role in ["leader", "follower"] {
        let leader = servers(&["leader", cluster]);
        let victim = if role == "leader" {
            leader.clone()
        } else {
            let prefix = leader.trim_end_matches(char::is_numeric);
            (1..=3)
                .map(|n| format!("{prefix}{n}"))
                .find(|m| *m != leader)
                .expect("a follower")
        };
        let url = support::over_etcd_transport(format!("{backend}://{addrs}?{OPTIONS}"));
        let live = go_live(&url, case).await;
        servers(&["kill", &victim]);
        // The other members carry on: reads and writes work within the
        // timeout (after failover and, for a leader, an election).
        support::put_until_done(&*live.store, &live.key, "during", Duration::from_secs(30)).await;
        live.store
            .get(&live.key)
            .await
            .expect("a read with a member down");
        tokio::time::sleep(Duration::from_secs(1)).await;
        servers(&["revive", &victim]);
        after_recovery(live, backend == "etcd", false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cluster_loses_leader_then_follower() {
    cluster_member_loss(
        "etcd",
        "KV_ETCD_CLUSTER",
        "etcd-cluster",
        "etcd_cluster_loses_leader_then_follower",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_cluster_loses_leader_then_follower() {
    cluster_member_loss(
        "consul",
        "KV_CONSUL_CLUSTER",
        "consul-cluster",
        "consul_cluster_loses_leader_then_follower",
    )
    .await;
}
