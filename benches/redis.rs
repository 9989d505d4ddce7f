//! kvmesh on Redis beside a bare redis-rs client on the same server, side by
//! side in one run: `get` vs a bare `GET`, `put` vs a bare `SET` (kvmesh's
//! put is one script that also bumps the version, indexes the key and
//! appends to the change log), at 1 and 32 in flight.
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

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use wire_limit::{bench_against, keys, runtime, server_addr};

fn redis(c: &mut Criterion) {
    let Some(addr) = server_addr("KV_REDIS_ADDR", "redis") else {
        return;
    };
    let rt = runtime();
    let store = rt
        .block_on(kvmesh::connect(&format!(
            "redis://{addr}?namespace=kvbench"
        )))
        .unwrap();
    let bare = rt.block_on(async {
        let client = redis::Client::open(format!("redis://{addr}/0")).unwrap();
        redis::aio::ConnectionManager::new(client).await.unwrap()
    });
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

criterion_group!(benches, redis);
criterion_main!(benches);
