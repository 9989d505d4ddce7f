//! The memory store against bare baselines, side by side in one run:
//! - `get` / `put` through `Arc<dyn Store>` vs the same data in a bare
//!   `RwLock<BTreeMap>` (the floor for an in-process map), and vs that bare
//!   map behind an `async-trait` object (`baseline_dyn`: what the `Store`
//!   trait's boxed futures cost by themselves, before any kvmesh code);
//! - one `put` observed by 1, 100 and 10,000 watchers vs the same write to
//!   the bare map followed by the same fan-out through a bare
//!   `tokio::sync::broadcast` channel.
//!
//! Run with `cargo bench --bench memory`.
#![allow(missing_docs, unreachable_pub)]

#[path = "support/paired.rs"]
mod paired;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use futures::StreamExt;
use kvmesh::{Bytes, KvEvent, KvPair, Store, WatchOptions};
use tokio::sync::{Notify, broadcast};

const KEYS: usize = 1_000;

fn key(i: usize) -> String {
    format!("bench/key/{i:06}")
}

/// The baseline: the same data in a bare map, read and written the same way.
#[derive(Default)]
struct BareMap {
    map: RwLock<BTreeMap<String, (Bytes, u64)>>,
    revision: std::sync::atomic::AtomicU64,
}

impl BareMap {
    async fn get(&self, key: &str) -> Option<KvPair> {
        let map = self.map.read().unwrap();
        map.get(key).map(|(value, version)| KvPair {
            key: key.to_owned(),
            value: value.clone(),
            version: *version,
        })
    }

    async fn put(&self, key: &str, value: Bytes) {
        let version = self.revision.fetch_add(1, Ordering::Relaxed) + 1;
        self.map
            .write()
            .unwrap()
            .insert(key.to_owned(), (value, version));
    }
}

/// The bare map behind the same kind of trait object as `Store`.
#[async_trait::async_trait]
trait DynMap: Send + Sync {
    async fn get(&self, key: &str) -> Option<KvPair>;
    async fn put(&self, key: &str, value: Bytes);
}

#[async_trait::async_trait]
impl DynMap for BareMap {
    async fn get(&self, key: &str) -> Option<KvPair> {
        BareMap::get(self, key).await
    }

    async fn put(&self, key: &str, value: Bytes) {
        BareMap::put(self, key, value).await
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn get_and_put(c: &mut Criterion) {
    let rt = runtime();
    let store: Arc<dyn Store> = rt.block_on(kvmesh::connect("memory://")).unwrap();
    let bare = BareMap::default();
    let bare_dyn: Arc<dyn DynMap> = Arc::new(BareMap::default());
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    let value = Bytes::from_static(b"10.0.0.1:7000");
    rt.block_on(async {
        for k in &keys {
            store.put(k, value.clone()).await.unwrap();
            bare.put(k, value.clone()).await;
            bare_dyn.put(k, value.clone()).await;
        }
    });

    let mut group = c.benchmark_group("memory/get");
    let mut i = 0;
    let mut get_ran = false;
    group.bench_function("kvmesh", |b| {
        get_ran = true;
        b.to_async(&rt).iter(|| {
            i = (i + 7) % KEYS;
            let (store, k) = (&store, &keys[i]);
            async move { store.get(k).await.unwrap() }
        })
    });
    group.bench_function("baseline", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 7) % KEYS;
            let (bare, k) = (&bare, &keys[i]);
            async move { bare.get(k).await }
        })
    });
    group.bench_function("baseline_dyn", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 7) % KEYS;
            let (bare, k) = (&bare_dyn, &keys[i]);
            async move { bare.get(k).await }
        })
    });
    group.finish();
    if get_ran {
        let kvmesh_get = |i: usize| {
            let (store, k) = (&store, &keys[i * 7 % KEYS]);
            async move {
                store.get(k).await.unwrap();
            }
        };
        paired::compare(
            &rt,
            "memory/get",
            1,
            &kvmesh_get,
            "baseline",
            &|i: usize| {
                let (bare, k) = (&bare, &keys[i * 7 % KEYS]);
                async move {
                    bare.get(k).await;
                }
            },
        );
        paired::compare(
            &rt,
            "memory/get",
            1,
            &kvmesh_get,
            "baseline_dyn",
            &|i: usize| {
                let (bare, k) = (&bare_dyn, &keys[i * 7 % KEYS]);
                async move {
                    bare.get(k).await;
                }
            },
        );
    }

    let mut group = c.benchmark_group("memory/put");
    let mut put_ran = false;
    group.bench_function("kvmesh", |b| {
        put_ran = true;
        b.to_async(&rt).iter(|| {
            i = (i + 7) % KEYS;
            let (store, k, v) = (&store, &keys[i], value.clone());
            async move { store.put(k, v).await.unwrap() }
        })
    });
    group.bench_function("baseline", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 7) % KEYS;
            let (bare, k, v) = (&bare, &keys[i], value.clone());
            async move { bare.put(k, v).await }
        })
    });
    group.bench_function("baseline_dyn", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 7) % KEYS;
            let (bare, k, v) = (&bare_dyn, &keys[i], value.clone());
            async move { bare.put(k, v).await }
        })
    });
    group.finish();
    if put_ran {
        let kvmesh_put = |i: usize| {
            let (store, k, v) = (&store, &keys[i * 7 % KEYS], value.clone());
            async move { store.put(k, v).await.unwrap() }
        };
        paired::compare(
            &rt,
            "memory/put",
            1,
            &kvmesh_put,
            "baseline",
            &|i: usize| {
                let (bare, k, v) = (&bare, &keys[i * 7 % KEYS], value.clone());
                async move { bare.put(k, v).await }
            },
        );
        paired::compare(
            &rt,
            "memory/put",
            1,
            &kvmesh_put,
            "baseline_dyn",
            &|i: usize| {
                let (bare, k, v) = (&bare_dyn, &keys[i * 7 % KEYS], value.clone());
                async move { bare.put(k, v).await }
            },
        );
    }
}

/// Counts deliveries and wakes the bench when every watcher has one.
struct Arrivals {
    count: AtomicUsize,
    expected: usize,
    all_in: Notify,
}

impl Arrivals {
    fn arrived(&self) {
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.expected {
            self.all_in.notify_one();
        }
    }

    async fn wait_all(&self) {
        self.all_in.notified().await;
        self.count.store(0, Ordering::Release);
    }
}

fn put_observed_by_watchers(c: &mut Criterion) {
    let mut group = c.benchmark_group("memory/put_to_all_watchers");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    for watchers in [1usize, 100, 10_000] {
        let rt = runtime();
        let store: Arc<dyn Store> = rt.block_on(kvmesh::connect("memory://")).unwrap();
        let arrivals = Arc::new(Arrivals {
            count: AtomicUsize::new(0),
            expected: watchers,
            all_in: Notify::new(),
        });
        rt.block_on(async {
            for _ in 0..watchers {
                let mut watch = store
                    .watch("bench/watched", WatchOptions::after(0))
                    .await
                    .unwrap();
                let arrivals = arrivals.clone();
                tokio::spawn(async move {
                    while let Some(Ok(KvEvent::Put(_))) = watch.next().await {
                        arrivals.arrived();
                    }
                });
            }
        });
        let mut ran = false;
        group.bench_function(BenchmarkId::new("kvmesh", watchers), |b| {
            ran = true;
            b.to_async(&rt).iter_custom(|iters| {
                let (store, arrivals) = (store.clone(), arrivals.clone());
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        store
                            .put("bench/watched", Bytes::from_static(b"v"))
                            .await
                            .unwrap();
                        arrivals.wait_all().await;
                    }
                    start.elapsed()
                }
            })
        });

        // The same job by hand: store the value, then tell every watcher.
        let bare = Arc::new(BareMap::default());
        let (tx, _) = broadcast::channel::<Arc<KvEvent>>(32);
        rt.block_on(async {
            for _ in 0..watchers {
                let mut rx = tx.subscribe();
                let arrivals = arrivals.clone();
                tokio::spawn(async move {
                    while let Ok(event) = rx.recv().await {
                        // Hand out an owned event, as a watch does.
                        std::hint::black_box(KvEvent::clone(&event));
                        arrivals.arrived();
                    }
                });
            }
        });
        group.bench_function(BenchmarkId::new("baseline", watchers), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (bare, tx, arrivals) = (bare.clone(), tx.clone(), arrivals.clone());
                async move {
                    let start = Instant::now();
                    for n in 0..iters {
                        bare.put("bench/watched", Bytes::from_static(b"v")).await;
                        let event = KvEvent::Put(KvPair {
                            key: "bench/watched".to_owned(),
                            value: Bytes::from_static(b"v"),
                            version: n + 1,
                        });
                        tx.send(Arc::new(event)).unwrap();
                        arrivals.wait_all().await;
                    }
                    start.elapsed()
                }
            })
        });
        if ran {
            let kvmesh_op = |_: usize| {
                let (store, arrivals) = (&store, &arrivals);
                async move {
                    store
                        .put("bench/watched", Bytes::from_static(b"v"))
                        .await
                        .unwrap();
                    arrivals.wait_all().await;
                }
            };
            let baseline_op = |n: usize| {
                let (bare, tx, arrivals) = (&bare, &tx, &arrivals);
                async move {
                    bare.put("bench/watched", Bytes::from_static(b"v")).await;
                    let event = KvEvent::Put(KvPair {
                        key: "bench/watched".to_owned(),
                        value: Bytes::from_static(b"v"),
                        version: n as u64 + 1,
                    });
                    tx.send(Arc::new(event)).unwrap();
                    arrivals.wait_all().await;
                }
            };
            let row = format!("memory/put_to_all_watchers/baseline/{watchers}");
            paired::compare_as(&rt, &row, 1, &kvmesh_op, &baseline_op);
        }
    }
    group.finish();
}

criterion_group!(benches, get_and_put, put_observed_by_watchers);
criterion_main!(benches);
