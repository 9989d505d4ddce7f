//! kvmesh on Consul beside the wire limit (the same requests through a bare
//! hyper client), side by side in one run, on two agents:
//! - `consul-server`: a server in production mode (`KV_CONSUL_SERVER_ADDR`,
//!   started by `scripts/servers up --bench`): compact JSON, as users see;
//! - `consul`: the tests' `-dev` agent (`KV_CONSUL_ADDR`), which pretty-prints
//!   every reply, so decoding weighs about twice as much there.
//!
//! `get_range` has one more reference: the bare request plus its reply
//! read by serde_json (`baseline_parsed`), values decoded from base64. Every row is also measured paired
//! (`support/paired.rs`): both sides in turns over the same seconds.
//!
//! Run with `scripts/bench` or `cargo bench --bench consul`.
#![allow(missing_docs, unreachable_pub)]

#[path = "support/paired.rs"]
mod paired;
#[path = "support/parsed_baseline.rs"]
mod parsed_baseline;
#[path = "support/watch_limit.rs"]
mod watch_limit;
#[path = "support/wire_limit.rs"]
mod wire_limit;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use hyper::Method;
use wire_limit::{
    bare_client, bare_request, bench_against, bench_listing, bench_watch_group, keys, runtime,
    server_addr,
};

fn consul(c: &mut Criterion) {
    for (backend, variable) in [
        ("consul-server", "KV_CONSUL_SERVER_ADDR"),
        ("consul", "KV_CONSUL_ADDR"),
    ] {
        if let Some(addr) = server_addr(variable, backend) {
            bench_agent(c, backend, addr);
        }
    }
}

/// Every row against one agent; `backend` names the rows.
fn bench_agent(c: &mut Criterion, backend: &str, addr: String) {
    let rt = runtime();
    let store = rt
        .block_on(kvmesh::connect(&format!("consul://{addr}")))
        .unwrap();
    let bare = bare_client();
    let keys = keys("kvbench/consul/", 100);
    let value = Bytes::from_static(b"10.0.0.1:7000");
    rt.block_on(async {
        for key in keys.iter() {
            store.put(key, value.clone()).await.unwrap();
        }
    });
    for concurrency in [1, 32] {
        let (s, k) = (store.clone(), keys.clone());
        let (b, k2, a) = (bare.clone(), keys.clone(), addr.clone());
        bench_against(
            c,
            &rt,
            &format!("{backend}/get"),
            concurrency,
            move |i| {
                let (s, k) = (s.clone(), k.clone());
                async move {
                    s.get(&k[i % k.len()]).await.unwrap().unwrap();
                }
            },
            move |i| {
                let (b, uri) = (b.clone(), format!("http://{a}/v1/kv/{}", k2[i % k2.len()]));
                async move {
                    bare_request(&b, Method::GET, &uri, Bytes::new()).await;
                }
            },
        );

        let (s, k, v) = (store.clone(), keys.clone(), value.clone());
        let (b, k2, a, v2) = (bare.clone(), keys.clone(), addr.clone(), value.clone());
        bench_against(
            c,
            &rt,
            &format!("{backend}/put"),
            concurrency,
            move |i| {
                let (s, k, v) = (s.clone(), k.clone(), v.clone());
                async move {
                    s.put(&k[i % k.len()], v).await.unwrap();
                }
            },
            move |i| {
                let (b, uri, v) = (
                    b.clone(),
                    format!("http://{a}/v1/kv/{}", k2[i % k2.len()]),
                    v2.clone(),
                );
                async move {
                    bare_request(&b, Method::PUT, &uri, v).await;
                }
            },
        );

        let s = store.clone();
        let (b, uri) = (
            bare.clone(),
            format!("http://{addr}/v1/kv/kvbench/consul/?recurse"),
        );
        bench_listing(
            c,
            &rt,
            &format!("{backend}/get_range"),
            concurrency,
            move |_| {
                let s = s.clone();
                async move {
                    assert_eq!(s.get_range("kvbench/consul/").await.unwrap().len(), 100);
                }
            },
            move || {
                let (b, uri) = (b.clone(), uri.clone());
                async move { bare_request(&b, Method::GET, &uri, Bytes::new()).await }
            },
            |body| parsed_baseline::parse_consul_listing(body).len(),
        );

        // A compare-and-set that fails its check (the version is stale):
        // the same request and answer on both sides.
        let (s, k, v) = (store.clone(), keys.clone(), value.clone());
        let (b, k2, a, v2) = (bare.clone(), keys.clone(), addr.clone(), value.clone());
        bench_against(
            c,
            &rt,
            &format!("{backend}/atomic_put"),
            concurrency,
            move |i| {
                let (s, k, v) = (s.clone(), k.clone(), v.clone());
                async move {
                    assert!(!s.atomic_put(&k[i % k.len()], v, Some(1)).await.unwrap());
                }
            },
            move |i| {
                let (b, uri, v) = (
                    b.clone(),
                    format!("http://{a}/v1/kv/{}?cas=1", k2[i % k2.len()]),
                    v2.clone(),
                );
                async move {
                    bare_request(&b, Method::PUT, &uri, v).await;
                }
            },
        );

        let (b, a) = (bare.clone(), addr.clone());
        bench_watch_group(c, &rt, backend, store.clone(), concurrency, move |key| {
            watch_limit::consul_watcher(b.clone(), a.clone(), key)
        });
    }
}

criterion_group!(benches, consul);
criterion_main!(benches);
