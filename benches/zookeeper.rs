//! kvmesh on ZooKeeper beside the bare `zookeeper-client` on the same
//! server, side by side in one run: `get` vs a bare `get_data`, `put` vs a
//! bare `set_data`, at 1 and 32 in flight; `get_range` of 100 keys vs a bare
//! `list_children` plus one `multi` read of their data (kvmesh also checks
//! the read was of one moment: a second `multi` of every node's stat);
//! `atomic_put` vs a bare `set_data` at a known data version (kvmesh reads
//! the node first: the caller's version is an `mzxid`, which ZooKeeper
//! cannot compare); and put → event (1 in flight) through a kvmesh watch
//! vs a bare persistent watch plus the `get_data` a user makes after it.
//!
//! Run with `scripts/bench zookeeper` or `cargo bench --bench zookeeper`.
#![allow(missing_docs, unreachable_pub)]

#[path = "support/paired.rs"]
mod paired;
#[allow(dead_code)]
#[path = "support/wire_limit.rs"]
mod wire_limit;

use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use wire_limit::{bench_against, keys, runtime, server_addr};
use zookeeper_client as zk;

const ROOT: &str = "/kvbench-zk";

struct Sides {
    rt: tokio::runtime::Runtime,
    store: Arc<dyn kvmesh::Store>,
    bare: zk::Client,
}

fn sides() -> Option<Sides> {
    let addr = server_addr("KV_ZOOKEEPER_ADDR", "zookeeper")?;
    let rt = runtime();
    let store = rt
        .block_on(kvmesh::connect(&format!("zk://{addr}{ROOT}")))
        .unwrap();
    let bare = rt.block_on(zk::Client::connect(&addr)).unwrap();
    Some(Sides { rt, store, bare })
}

/// Makes `path` (and its parents) with `data`, or writes `data` there.
async fn bare_put(bare: &zk::Client, path: &str, data: &[u8]) {
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    if bare.set_data(path, data, None).await.is_err() {
        bare.mkdir(path.rsplit_once('/').unwrap().0, &options)
            .await
            .or_else(|e| {
                if e == zk::Error::NodeExists {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .unwrap();
        bare.create(path, data, &options).await.unwrap();
    }
}

fn zookeeper(c: &mut Criterion) {
    let Some(Sides { rt, store, bare }) = sides() else {
        return;
    };
    let keys = keys("kv/", 100);
    let value = Bytes::from_static(b"10.0.0.1:7000");
    let bare_paths: Arc<Vec<String>> =
        Arc::new(keys.iter().map(|k| format!("/kvbench-bare/{k}")).collect());
    rt.block_on(async {
        for (key, path) in keys.iter().zip(bare_paths.iter()) {
            store.put(key, value.clone()).await.unwrap();
            bare_put(&bare, path, &value).await;
        }
    });
    // kvmesh's get, the same against both baselines below.
    let kvmesh_get = |s: Arc<dyn kvmesh::Store>, k: Arc<Vec<String>>| {
        move |i: usize| {
            let (s, k) = (s.clone(), k.clone());
            async move {
                s.get(&k[i % k.len()]).await.unwrap().unwrap();
            }
        }
    };
    for concurrency in [1, 32] {
        let (b, p) = (bare.clone(), bare_paths.clone());
        bench_against(
            c,
            &rt,
            "zookeeper/get",
            concurrency,
            kvmesh_get(store.clone(), keys.clone()),
            move |i| {
                let (b, p) = (b.clone(), p.clone());
                async move {
                    let (data, _) = b.get_data(&p[i % p.len()]).await.unwrap();
                    std::hint::black_box(Bytes::from(data));
                }
            },
        );
        // kvmesh's get syncs first (a read sees every write that ended
        // before it): against the bare client doing the same.
        let (b, p) = (bare.clone(), bare_paths.clone());
        bench_against(
            c,
            &rt,
            "zookeeper/get_vs_synced",
            concurrency,
            kvmesh_get(store.clone(), keys.clone()),
            move |i| {
                let (b, p) = (b.clone(), p.clone());
                async move {
                    let path = &p[i % p.len()];
                    let synced = b.sync(path);
                    let (data, _) = b.get_data(path).await.unwrap();
                    synced.await.unwrap();
                    std::hint::black_box(Bytes::from(data));
                }
            },
        );
        let (s, k, v) = (store.clone(), keys.clone(), value.clone());
        let (b, p, v2) = (bare.clone(), bare_paths.clone(), value.clone());
        bench_against(
            c,
            &rt,
            "zookeeper/put",
            concurrency,
            move |i| {
                let (s, k, v) = (s.clone(), k.clone(), v.clone());
                async move {
                    s.put(&k[i % k.len()], v).await.unwrap();
                }
            },
            move |i| {
                let (b, p, v) = (b.clone(), p.clone(), v2.clone());
                async move {
                    b.set_data(&p[i % p.len()], &v, None).await.unwrap();
                }
            },
        );
        let s = store.clone();
        let b = bare.clone();
        bench_against(
            c,
            &rt,
            "zookeeper/get_range",
            concurrency,
            move |_| {
                let s = s.clone();
                async move {
                    assert_eq!(s.get_range("kv/").await.unwrap().len(), 100);
                }
            },
            move |_| {
                let b = b.clone();
                async move {
                    let children = b.list_children("/kvbench-bare/kv").await.unwrap();
                    let mut reader = b.new_multi_reader();
                    for child in &children {
                        reader
                            .add_get_data(&format!("/kvbench-bare/kv/{child}"))
                            .unwrap();
                    }
                    assert_eq!(reader.commit().await.unwrap().len(), 100);
                }
            },
        );
        // Each in-flight call its own key: a CAS of a key nobody else writes.
        let (s, k) = (store.clone(), keys.clone());
        let (b, p) = (bare.clone(), bare_paths.clone());
        bench_against(
            c,
            &rt,
            "zookeeper/atomic_put",
            concurrency,
            move |i| {
                let (s, k) = (s.clone(), k.clone());
                async move {
                    let key = &k[i % concurrency];
                    let version = s.get(key).await.unwrap().unwrap().version;
                    let swapped = s.atomic_put(key, Bytes::from_static(b"x"), Some(version));
                    assert!(swapped.await.unwrap());
                }
            },
            move |i| {
                let (b, p) = (b.clone(), p.clone());
                async move {
                    let path = &p[i % concurrency];
                    let (_, stat) = b.get_data(path).await.unwrap();
                    b.set_data(path, b"x", Some(stat.version)).await.unwrap();
                }
            },
        );
    }
    // Put → event.
    let (events, notices) = rt.block_on(async {
        let watch = store
            .watch("watch/key", kvmesh::WatchOptions::after(u64::MAX))
            .await
            .unwrap();
        let events = Arc::new(tokio::sync::Mutex::new(wire_limit::signal_events(watch, 0)));
        bare_put(&bare, "/kvbench-bare/watch/key", b"0").await;
        let mut watcher = bare
            .watch("/kvbench-bare/watch/key", zk::AddWatchMode::Persistent)
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let reader = bare.clone();
        tokio::spawn(async move {
            loop {
                let event = watcher.changed().await;
                if event.event_type != zk::EventType::NodeDataChanged {
                    continue;
                }
                let read = reader.get_data(&event.path).await.unwrap();
                if tx.send(read).is_err() {
                    return;
                }
            }
        });
        (events, Arc::new(tokio::sync::Mutex::new(rx)))
    });
    let s = store.clone();
    let b = bare.clone();
    bench_against(
        c,
        &rt,
        "zookeeper/watch",
        1,
        move |i| {
            let (s, events) = (s.clone(), events.clone());
            async move {
                let mut events = events.lock().await;
                s.put("watch/key", Bytes::from(i.to_string()))
                    .await
                    .unwrap();
                events.recv().await.unwrap();
            }
        },
        move |i| {
            let (b, notices) = (b.clone(), notices.clone());
            async move {
                let mut notices = notices.lock().await;
                b.set_data("/kvbench-bare/watch/key", i.to_string().as_bytes(), None)
                    .await
                    .unwrap();
                notices.recv().await.unwrap();
            }
        },
    );
}

criterion_group!(benches, zookeeper);
criterion_main!(benches);
