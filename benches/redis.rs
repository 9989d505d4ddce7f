//! kvmesh on Redis beside a bare redis-rs client on the same server, side by
//! side in one run: `get` vs a bare `GET`, `put` vs a bare `SET` (kvmesh's
//! put is one script that also bumps the version, indexes the key and
//! appends to the change log), at 1 and 32 in flight; `get_range` of 100
//! keys vs a bare `ZRANGEBYLEX` of an index plus an `MGET` of what it
//! lists; and put → event received (at 1 in flight) through a kvmesh watch
//! vs a bare pub/sub round trip (`PUBLISH` → the subscriber's message).
//!
//! Run with `scripts/bench redis` or `cargo bench --bench redis`.
#![allow(missing_docs, unreachable_pub)]

#[path = "support/paired.rs"]
mod paired;
#[path = "support/watch_limit.rs"]
mod watch_limit;
#[allow(dead_code)]
#[path = "support/wire_limit.rs"]
mod wire_limit;

use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use wire_limit::{bench_against, keys, runtime, server_addr};

/// The store, a bare redis-rs client and connection on the same server.
struct Sides {
    rt: tokio::runtime::Runtime,
    store: Arc<dyn kvmesh::Store>,
    client: redis::Client,
    bare: redis::aio::ConnectionManager,
}

fn sides() -> Option<Sides> {
    let addr = server_addr("KV_REDIS_ADDR", "redis")?;
    let rt = runtime();
    let store = rt
        .block_on(kvmesh::connect(&format!(
            "redis://{addr}?namespace=kvbench"
        )))
        .unwrap();
    let client = redis::Client::open(format!("redis://{addr}/0")).unwrap();
    let bare = rt
        .block_on(redis::aio::ConnectionManager::new(client.clone()))
        .unwrap();
    Some(Sides {
        rt,
        store,
        client,
        bare,
    })
}

fn redis(c: &mut Criterion) {
    let Some(Sides {
        rt, store, bare, ..
    }) = sides()
    else {
        return;
    };
    let keys = keys("kvbench/redis/", 100);
    let value = Bytes::from_static(b"10.0.0.1:7000");
    rt.block_on(async {
        let mut conn = bare.clone();
        for key in keys.iter() {
            store.put(key, value.clone()).await.unwrap();
            let _: () = redis::cmd("SET")
                .arg(format!("bare:{key}"))
                .arg(&value[..])
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    });
    for concurrency in [1, 32] {
        let (s, k) = (store.clone(), keys.clone());
        let (b, k2) = (bare.clone(), keys.clone());
        bench_against(
            c,
            &rt,
            "redis/get",
            concurrency,
            move |i| {
                let (s, k) = (s.clone(), k.clone());
                async move {
                    s.get(&k[i % k.len()]).await.unwrap().unwrap();
                }
            },
            move |i| {
                let (mut b, key) = (b.clone(), format!("bare:{}", k2[i % k2.len()]));
                async move {
                    let value: Vec<u8> = redis::cmd("GET")
                        .arg(key)
                        .query_async(&mut b)
                        .await
                        .unwrap();
                    std::hint::black_box(Bytes::from(value));
                }
            },
        );
        let (s, k, v) = (store.clone(), keys.clone(), value.clone());
        let (b, k2, v2) = (bare.clone(), keys.clone(), value.clone());
        bench_against(
            c,
            &rt,
            "redis/put",
            concurrency,
            move |i| {
                let (s, k, v) = (s.clone(), k.clone(), v.clone());
                async move {
                    s.put(&k[i % k.len()], v).await.unwrap();
                }
            },
            move |i| {
                let (mut b, key, v) = (b.clone(), format!("bare:{}", k2[i % k2.len()]), v2.clone());
                async move {
                    let _: () = redis::cmd("SET")
                        .arg(key)
                        .arg(&v[..])
                        .query_async(&mut b)
                        .await
                        .unwrap();
                }
            },
        );
    }
}

/// The `get_range` and watch rows.
fn redis_range_and_watch(c: &mut Criterion) {
    let Some(Sides {
        rt,
        store,
        client,
        bare,
    }) = sides()
    else {
        return;
    };
    let keys = keys("kvbench/redis/", 100);
    rt.block_on(async {
        let mut conn = bare.clone();
        for key in keys.iter() {
            store
                .put(key, Bytes::from_static(b"10.0.0.1:7000"))
                .await
                .unwrap();
            let _: () = redis::pipe()
                .cmd("SET")
                .arg(format!("bare:{key}"))
                .arg("10.0.0.1:7000")
                .ignore()
                .cmd("ZADD")
                .arg("bare:index")
                .arg(0)
                .arg(format!("bare:{key}"))
                .ignore()
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    });
    for concurrency in [1, 32] {
        let s = store.clone();
        let b = bare.clone();
        bench_against(
            c,
            &rt,
            "redis/get_range",
            concurrency,
            move |_| {
                let s = s.clone();
                async move {
                    assert_eq!(s.get_range("kvbench/redis/").await.unwrap().len(), 100);
                }
            },
            move |_| {
                let mut b = b.clone();
                async move {
                    let listed: Vec<String> = redis::cmd("ZRANGEBYLEX")
                        .arg("bare:index")
                        .arg("[bare:kvbench/redis/")
                        .arg("(bare:kvbench/redis0")
                        .query_async(&mut b)
                        .await
                        .unwrap();
                    let values: Vec<Vec<u8>> = redis::cmd("MGET")
                        .arg(&listed)
                        .query_async(&mut b)
                        .await
                        .unwrap();
                    assert_eq!(values.len(), 100);
                }
            },
        );
    }

    // Put → event: one watched key, one subscribed channel.
    let (events, messages) = rt.block_on(async {
        let watch = store
            .watch("kvbench/redis-watch/key", kvmesh::WatchOptions::after(0))
            .await
            .unwrap();
        let events = Arc::new(tokio::sync::Mutex::new(wire_limit::signal_events(watch, 0)));
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.subscribe("bare:watch").await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            while futures::StreamExt::next(&mut stream).await.is_some() {
                if tx.send(()).is_err() {
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
        "redis/watch",
        1,
        move |i| {
            let (s, events) = (s.clone(), events.clone());
            async move {
                let mut events = events.lock().await;
                s.put("kvbench/redis-watch/key", Bytes::from(i.to_string()))
                    .await
                    .unwrap();
                events.recv().await.unwrap();
            }
        },
        move |i| {
            let (mut b, messages) = (b.clone(), messages.clone());
            async move {
                let mut messages = messages.lock().await;
                let _: i64 = redis::cmd("PUBLISH")
                    .arg("bare:watch")
                    .arg(i.to_string())
                    .query_async(&mut b)
                    .await
                    .unwrap();
                messages.recv().await.unwrap();
            }
        },
    );
}

criterion_group!(benches, redis, redis_range_and_watch);
criterion_main!(benches);
