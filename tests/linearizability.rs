//! Linearizability, checked as etcd's own robustness tests check it: several
//! clients run concurrent `get`, `put` and `atomic_put` on one key, every
//! written value unique, while the leader of the 3-member etcd cluster, of
//! the 3-server Consul cluster or of the 3-server ZooKeeper ensemble is
//! killed and revived (ZooKeeper's reads sync first: without it, a read
//! from a lagging server failed the check in 2 runs of 5); then
//! `support::linearizability` decides whether one sequential order of a
//! single register explains the whole history. A write that failed is of
//! unknown outcome: it may have taken effect at any time after its call, or
//! never. Each run is bounded: a fixed number of operations per client.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use kvmesh::{Bytes, Store};
use support::linearizability::{Entry, Op, is_linearizable};
#[cfg(any(feature = "consul", feature = "etcd", feature = "zookeeper"))]
use support::servers;

const CLIENTS: usize = 4;
const OPS_PER_CLIENT: usize = 120;

fn value_id(bytes: &[u8]) -> u32 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a value no client wrote: {bytes:?}"))
}

/// One client's operations on `key`, each timed from `start`.
async fn client(
    store: Arc<dyn Store>,
    key: String,
    start: Instant,
    next_value: Arc<AtomicU32>,
    seed: usize,
) -> Vec<Entry> {
    let now = || start.elapsed().as_nanos() as u64;
    let mut history = Vec::new();
    for i in 0..OPS_PER_CLIENT {
        match (seed + i) % 3 {
            0 => {
                let call = now();
                if let Ok(found) = store.get(&key).await {
                    let ret = now();
                    let seen = found.map(|p| value_id(&p.value));
                    history.push(Entry {
                        call,
                        ret,
                        op: Op::Get(seen),
                    });
                }
            }
            1 => {
                let v = next_value.fetch_add(1, Ordering::Relaxed);
                let call = now();
                let result = store.put(&key, Bytes::from(v.to_string())).await;
                let (ret, op) = match result {
                    Ok(()) => (now(), Op::Put(v)),
                    Err(_) => (u64::MAX, Op::PutUnknown(v)),
                };
                history.push(Entry { call, ret, op });
            }
            _ => {
                // Read, then swap on the version read: the expected value is
                // the one written at that version.
                let call = now();
                let Ok(found) = store.get(&key).await else {
                    continue;
                };
                let ret = now();
                let expected = found.as_ref().map(|p| value_id(&p.value));
                history.push(Entry {
                    call,
                    ret,
                    op: Op::Get(expected),
                });
                let v = next_value.fetch_add(1, Ordering::Relaxed);
                let call = now();
                let previous = found.map(|p| p.version);
                let result = store
                    .atomic_put(&key, Bytes::from(v.to_string()), previous)
                    .await;
                let (ret, swapped) = match result {
                    Ok(swapped) => (now(), Some(swapped)),
                    Err(_) => (u64::MAX, None),
                };
                history.push(Entry {
                    call,
                    ret,
                    op: Op::Cas {
                        expected,
                        new: v,
                        swapped,
                    },
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    history
}

/// Records a history on `key` from `CLIENTS` stores, with `fault` run
/// alongside, and checks it.
async fn check(stores: Vec<Arc<dyn Store>>, key: String, fault: impl Future<Output = ()>) {
    let start = Instant::now();
    let next_value = Arc::new(AtomicU32::new(1));
    let clients = stores.into_iter().enumerate().map(|(seed, store)| {
        tokio::spawn(client(store, key.clone(), start, next_value.clone(), seed))
    });
    let (histories, ()) = tokio::join!(futures::future::join_all(clients), fault);
    let history: Vec<Entry> = histories.into_iter().flat_map(|h| h.unwrap()).collect();
    let unknown = history.iter().filter(|e| e.ret == u64::MAX).count();
    let checked = Instant::now();
    let ok = is_linearizable(&history, None);
    eprintln!(
        "{} operations ({unknown} of unknown outcome) recorded in {:?}, checked in {:?}",
        history.len(),
        checked - start,
        checked.elapsed()
    );
    if !ok {
        // One line per operation, in call order: a history is hundreds long.
        let mut lines: Vec<&Entry> = history.iter().collect();
        lines.sort_by_key(|e| e.call);
        for e in lines {
            let ret = match e.ret {
                u64::MAX => "unknown".to_owned(),
                ret => format!("{:.3}", ret as f64 / 1e6),
            };
            eprintln!("{:>10.3} {ret:>10} {:?}", e.call as f64 / 1e6, e.op);
        }
        panic!("not linearizable: the history above (ms from the start)");
    }
}

/// Kills the cluster's leader a moment into the run, revives it a moment later.
#[cfg(any(feature = "consul", feature = "etcd", feature = "zookeeper"))]
async fn kill_and_revive_the_leader(cluster: &'static str) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let leader = tokio::task::spawn_blocking(move || servers(&["leader", cluster]))
        .await
        .unwrap();
    assert!(!leader.is_empty(), "{cluster} has no leader");
    let victim = leader.clone();
    tokio::task::spawn_blocking(move || servers(&["kill", &victim]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::spawn_blocking(move || servers(&["revive", &leader]))
        .await
        .unwrap();
}

#[cfg(any(feature = "consul", feature = "etcd", feature = "zookeeper"))]
async fn cluster_run(scheme: &str, var: &str, cluster: &'static str, test: &str) {
    let Some(addrs) = support::server_addr(var, test) else {
        return;
    };
    let url = support::over_etcd_transport(format!("{scheme}://{addrs}?timeout=2s"));
    let mut stores = Vec::new();
    for _ in 0..CLIENTS {
        stores.push(kvmesh::connect(&url).await.unwrap());
    }
    let key = format!("{}register", support::unique(test));
    check(stores, key, kill_and_revive_the_leader(cluster)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_is_linearizable() {
    let store = kvmesh::connect("memory://").await.unwrap();
    let stores = (0..CLIENTS).map(|_| store.clone()).collect();
    check(stores, "register".into(), async {}).await;
}

#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cluster_is_linearizable_through_a_leader_kill() {
    let test = "etcd_cluster_is_linearizable_through_a_leader_kill";
    cluster_run("etcd", "KV_ETCD_CLUSTER", "etcd-cluster", test).await;
}

#[cfg(feature = "consul")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_cluster_is_linearizable_through_a_leader_kill() {
    let test = "consul_cluster_is_linearizable_through_a_leader_kill";
    cluster_run("consul", "KV_CONSUL_CLUSTER", "consul-cluster", test).await;
}

#[cfg(feature = "zookeeper")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_ensemble_is_linearizable_through_a_leader_kill() {
    let test = "zookeeper_ensemble_is_linearizable_through_a_leader_kill";
    cluster_run("zk", "KV_ZOOKEEPER_CLUSTER", "zookeeper-cluster", test).await;
}

fn entry(call: u64, ret: u64, op: Op) -> Entry {
    Entry { call, ret, op }
}

#[test]
fn the_checker_accepts_overlap_and_refuses_stale_reads() {
    // A read overlapping a write may see either value.
    let overlap = [entry(0, 10, Op::Put(1)), entry(5, 6, Op::Get(None))];
    assert!(is_linearizable(&overlap, None));
    // A read after a write finished must see it.
    let stale = [entry(0, 10, Op::Put(1)), entry(11, 12, Op::Get(None))];
    assert!(!is_linearizable(&stale, None));
    // A write of unknown outcome may never happen, or happen late.
    let never = [
        entry(0, u64::MAX, Op::PutUnknown(1)),
        entry(5, 6, Op::Get(None)),
    ];
    assert!(is_linearizable(&never, None));
    let late = [
        entry(0, u64::MAX, Op::PutUnknown(1)),
        entry(5, 6, Op::Get(None)),
        entry(7, 8, Op::Get(Some(1))),
        entry(9, 10, Op::Get(Some(1))),
    ];
    assert!(is_linearizable(&late, None));
    // Once seen, it cannot be unseen.
    let flicker = [
        entry(0, u64::MAX, Op::PutUnknown(1)),
        entry(7, 8, Op::Get(Some(1))),
        entry(9, 10, Op::Get(None)),
    ];
    assert!(!is_linearizable(&flicker, None));
    // Two CAS from the same state cannot both succeed.
    let double = [
        entry(0, 1, Op::Put(1)),
        entry(
            2,
            5,
            Op::Cas {
                expected: Some(1),
                new: 2,
                swapped: Some(true),
            },
        ),
        entry(
            2,
            5,
            Op::Cas {
                expected: Some(1),
                new: 3,
                swapped: Some(true),
            },
        ),
    ];
    assert!(!is_linearizable(&double, None));
    let one_wins = [
        entry(0, 1, Op::Put(1)),
        entry(
            2,
            5,
            Op::Cas {
                expected: Some(1),
                new: 2,
                swapped: Some(true),
            },
        ),
        entry(
            2,
            5,
            Op::Cas {
                expected: Some(1),
                new: 3,
                swapped: Some(false),
            },
        ),
        entry(6, 7, Op::Get(Some(2))),
    ];
    assert!(is_linearizable(&one_wins, None));
}
