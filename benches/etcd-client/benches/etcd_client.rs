//! kvmesh on etcd, over gRPC and over the JSON gateway, each beside
//! `etcd-client` 0.21 on the same server in the same run: get, put,
//! get_range (100 keys), a failing atomic_put (one txn), at 1 and 32 in
//! flight, and put → watch event. Needs `KV_ETCD35_ADDR` (`scripts/servers`);
//! run with `scripts/bench etcd-client`.
#![allow(missing_docs, unreachable_pub)]

#[path = "../../support/paired.rs"]
mod paired;
// Shared with kvmesh's own benches, whose bare HTTP requests this one
// does not make.
#[allow(dead_code)]
#[path = "../../support/wire_limit.rs"]
mod wire_limit;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use wire_limit::{bench_against, bench_watch_group, keys, runtime, server_addr};

fn etcd_client(c: &mut Criterion) {
    let Some(addr) = server_addr("KV_ETCD35_ADDR", "etcd") else {
        return;
    };
    let rt = runtime();
    let theirs = rt
        .block_on(Client::connect([format!("http://{addr}")], None))
        .unwrap();
    let keys = keys("kvbench/etcd-client/", 100);
    let value = Bytes::from_static(b"10.0.0.1:7000");
    for transport in ["grpc", "http"] {
        let store = rt
            .block_on(kvmesh::connect(&format!("etcd://{addr}?transport={transport}")))
            .unwrap();
        rt.block_on(async {
            for key in keys.iter() {
                store.put(key, value.clone()).await.unwrap();
            }
        });
        for concurrency in [1, 32] {
            let id = |op: &str| format!("etcd-{transport}/{op}");
            let (s, k) = (store.clone(), keys.clone());
            let (kv, k2) = (theirs.kv_client(), keys.clone());
            bench_against(
                c,
                &rt,
                &id("get"),
                concurrency,
                move |i| {
                    let (s, k) = (s.clone(), k.clone());
                    async move {
                        s.get(&k[i % k.len()]).await.unwrap().unwrap();
                    }
                },
                move |i| {
                    let (mut kv, key) = (kv.clone(), k2[i % k2.len()].clone());
                    async move {
                        assert_eq!(kv.get(key, None).await.unwrap().kvs().len(), 1);
                    }
                },
            );

            let (s, k, v) = (store.clone(), keys.clone(), value.clone());
            let (kv, k2, v2) = (theirs.kv_client(), keys.clone(), value.clone());
            bench_against(
                c,
                &rt,
                &id("put"),
                concurrency,
                move |i| {
                    let (s, k, v) = (s.clone(), k.clone(), v.clone());
                    async move {
                        s.put(&k[i % k.len()], v).await.unwrap();
                    }
                },
                move |i| {
                    let (mut kv, key, v) = (kv.clone(), k2[i % k2.len()].clone(), v2.to_vec());
                    async move {
                        kv.put(key, v, None).await.unwrap();
                    }
                },
            );

            let s = store.clone();
            let kv = theirs.kv_client();
            bench_against(
                c,
                &rt,
                &id("get_range"),
                concurrency,
                move |_| {
                    let s = s.clone();
                    async move {
                        assert_eq!(s.get_range("kvbench/etcd-client/").await.unwrap().len(), 100);
                    }
                },
                move |_| {
                    let mut kv = kv.clone();
                    async move {
                        let prefix = Some(GetOptions::new().with_prefix());
                        let reply = kv.get("kvbench/etcd-client/", prefix).await.unwrap();
                        assert_eq!(reply.kvs().len(), 100);
                    }
                },
            );

            // A compare-and-set that fails its check: the same txn both ways.
            let (s, k, v) = (store.clone(), keys.clone(), value.clone());
            let (kv, k2, v2) = (theirs.kv_client(), keys.clone(), value.clone());
            bench_against(
                c,
                &rt,
                &id("atomic_put"),
                concurrency,
                move |i| {
                    let (s, k, v) = (s.clone(), k.clone(), v.clone());
                    async move {
                        assert!(!s.atomic_put(&k[i % k.len()], v, Some(1)).await.unwrap());
                    }
                },
                move |i| {
                    let (mut kv, key, v) = (kv.clone(), k2[i % k2.len()].clone(), v2.to_vec());
                    async move {
                        let txn = Txn::new()
                            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, 1)])
                            .and_then([TxnOp::put(key, v, None)]);
                        assert!(!kv.txn(txn).await.unwrap().succeeded());
                    }
                },
            );

            let watcher = theirs.clone();
            bench_watch_group(
                c,
                &rt,
                &format!("etcd-{transport}"),
                store.clone(),
                concurrency,
                move |key| watch_with_etcd_client(watcher.clone(), key),
            );
        }
    }
}

/// An etcd-client watch of `key`, one signal per event.
fn watch_with_etcd_client(
    client: Client,
    key: String,
) -> tokio::sync::mpsc::UnboundedReceiver<()> {
    let (signal, signals) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut watch = client.watch_client();
        let Ok(mut stream) = watch.watch(key, None).await else {
            return;
        };
        while let Ok(Some(reply)) = stream.message().await {
            for _ in reply.events() {
                if signal.send(()).is_err() {
                    return;
                }
            }
        }
    });
    signals
}

criterion_group!(benches, etcd_client);
criterion_main!(benches);

