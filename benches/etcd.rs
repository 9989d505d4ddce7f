//! kvmesh on etcd beside the wire limit (the same gateway requests through a
//! bare hyper client), side by side in one run. Needs `KV_ETCD35_ADDR` (see
//! `scripts/servers`); run with `scripts/bench` or `cargo bench --bench etcd`.
//!
//! `get_range` has one more reference: the bare request plus its reply
//! read by serde_json (`baseline_parsed`), keys and values decoded from
//! base64. Every row is also measured
//! paired (`support/paired.rs`): both sides in turns over the same seconds.
#![allow(missing_docs, unreachable_pub)]

#[path = "support/paired.rs"]
mod paired;
#[path = "support/parsed_baseline.rs"]
mod parsed_baseline;
#[path = "support/watch_limit.rs"]
mod watch_limit;
#[path = "support/wire_limit.rs"]
mod wire_limit;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use hyper::Method;
use wire_limit::{
    bare_client, bare_request, bench_against, bench_listing, bench_watch_group, keys, runtime,
    server_addr,
};

fn etcd(c: &mut Criterion) {
    let Some(addr) = server_addr("KV_ETCD35_ADDR", "etcd") else {
        return;
    };
    let rt = runtime();
    let store = rt
        // The gateway: the bare requests below are the same gateway calls
        // (gRPC is measured beside etcd-client in benches/etcd-client).
        .block_on(kvmesh::connect(&format!("etcd://{addr}?transport=http")))
        .unwrap();
    let bare = bare_client();
    let keys = keys("kvbench/etcd/", 100);
    let value = Bytes::from_static(b"10.0.0.1:7000");
    rt.block_on(async {
        for key in keys.iter() {
            store.put(key, value.clone()).await.unwrap();
        }
    });
    for concurrency in [1, 32] {
        let (s, k) = (store.clone(), keys.clone());
        let (b, k2, uri) = (
            bare.clone(),
            keys.clone(),
            format!("http://{addr}/v3/kv/range"),
        );
        bench_against(
            c,
            &rt,
            "etcd/get",
            concurrency,
            move |i| {
                let (s, k) = (s.clone(), k.clone());
                async move {
                    s.get(&k[i % k.len()]).await.unwrap().unwrap();
                }
            },
            move |i| {
                let body = format!(r#"{{"key":"{}"}}"#, BASE64.encode(&k2[i % k2.len()]));
                let (b, uri) = (b.clone(), uri.clone());
                async move {
                    bare_request(&b, Method::POST, &uri, Bytes::from(body)).await;
                }
            },
        );

        let (s, k, v) = (store.clone(), keys.clone(), value.clone());
        let (b, k2, uri, v2) = (
            bare.clone(),
            keys.clone(),
            format!("http://{addr}/v3/kv/put"),
            BASE64.encode(&value),
        );
        bench_against(
            c,
            &rt,
            "etcd/put",
            concurrency,
            move |i| {
                let (s, k, v) = (s.clone(), k.clone(), v.clone());
                async move {
                    s.put(&k[i % k.len()], v).await.unwrap();
                }
            },
            move |i| {
                let body = format!(
                    r#"{{"key":"{}","value":"{v2}"}}"#,
                    BASE64.encode(&k2[i % k2.len()])
                );
                let (b, uri) = (b.clone(), uri.clone());
                async move {
                    bare_request(&b, Method::POST, &uri, Bytes::from(body)).await;
                }
            },
        );

        let s = store.clone();
        let (b, uri) = (bare.clone(), format!("http://{addr}/v3/kv/range"));
        let body = Bytes::from(format!(
            r#"{{"key":"{}","range_end":"{}"}}"#,
            BASE64.encode("kvbench/etcd/"),
            BASE64.encode("kvbench/etcd0")
        ));
        bench_listing(
            c,
            &rt,
            "etcd/get_range",
            concurrency,
            move |_| {
                let s = s.clone();
                async move {
                    assert_eq!(s.get_range("kvbench/etcd/").await.unwrap().len(), 100);
                }
            },
            move || {
                let (b, uri, body) = (b.clone(), uri.clone(), body.clone());
                async move { bare_request(&b, Method::POST, &uri, body).await }
            },
            |reply| parsed_baseline::parse_etcd_range(reply).len(),
        );

        // A compare-and-set that fails its check (the version is stale):
        // the same transaction on both sides.
        let (s, k, v) = (store.clone(), keys.clone(), value.clone());
        let (b, k2, uri, v2) = (
            bare.clone(),
            keys.clone(),
            format!("http://{addr}/v3/kv/txn"),
            BASE64.encode(&value),
        );
        bench_against(
            c,
            &rt,
            "etcd/atomic_put",
            concurrency,
            move |i| {
                let (s, k, v) = (s.clone(), k.clone(), v.clone());
                async move {
                    assert!(!s.atomic_put(&k[i % k.len()], v, Some(1)).await.unwrap());
                }
            },
            move |i| {
                let key = BASE64.encode(&k2[i % k2.len()]);
                let body = format!(
                    r#"{{"compare":[{{"key":"{key}","target":"MOD","result":"EQUAL","mod_revision":"1"}}],"success":[{{"request_put":{{"key":"{key}","value":"{v2}"}}}}]}}"#
                );
                let (b, uri) = (b.clone(), uri.clone());
                async move {
                    bare_request(&b, Method::POST, &uri, Bytes::from(body)).await;
                }
            },
        );

        let (b, a) = (bare.clone(), addr.clone());
        bench_watch_group(c, &rt, "etcd", store.clone(), concurrency, move |key| {
            watch_limit::etcd_watcher(b.clone(), a.clone(), key)
        });
    }
}

criterion_group!(benches, etcd);
criterion_main!(benches);
