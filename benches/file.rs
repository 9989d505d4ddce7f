//! The file store beside bare redb, side by side in one run, each on a file
//! of its own in the same directory (`target/bench-files`):
//! - `get`: a kvmesh get vs a bare redb read transaction of one key;
//! - `put`: a kvmesh put vs a bare redb write transaction of one key with
//!   the same durability (`Durability::Immediate`, redb's default: fsync'd);
//!   at 32 in flight the bare side still commits one write per transaction
//!   (on the blocking pool, as a tokio service would), where kvmesh groups
//!   the writers in flight into shared commits.
//!
//! Run with `scripts/bench file` or `cargo bench --bench file`.
#![allow(missing_docs, unreachable_pub)]

#[path = "support/paired.rs"]
mod paired;
#[path = "support/watch_limit.rs"]
mod watch_limit;
#[allow(dead_code)]
#[path = "support/wire_limit.rs"]
mod wire_limit;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use wire_limit::{bench_against, keys, runtime};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("bench");

fn bench_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-files");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fresh(name: &str) -> PathBuf {
    let path = bench_dir().join(name);
    let _ = std::fs::remove_file(&path);
    path
}

fn bare_put(db: &Database, key: &str, value: &[u8]) {
    let txn = db.begin_write().unwrap();
    txn.open_table(TABLE).unwrap().insert(key, value).unwrap();
    txn.commit().unwrap();
}

fn file(c: &mut Criterion) {
    let rt = runtime();
    let path = fresh("kvmesh.redb");
    let store = rt
        .block_on(kvmesh::connect(&format!("file://{}", path.display())))
        .unwrap();
    let bare = Arc::new(Database::create(fresh("bare.redb")).unwrap());
    let keys = keys("kvbench/file/", 100);
    let value = Bytes::from_static(b"10.0.0.1:7000");
    rt.block_on(async {
        for key in keys.iter() {
            store.put(key, value.clone()).await.unwrap();
            bare_put(&bare, key, &value);
        }
    });

    for concurrency in [1, 32] {
        let (s, k) = (store.clone(), keys.clone());
        let (b, k2) = (bare.clone(), keys.clone());
        bench_against(
            c,
            &rt,
            "file/get",
            concurrency,
            move |i| {
                let (s, k) = (s.clone(), k.clone());
                async move {
                    s.get(&k[i % k.len()]).await.unwrap().unwrap();
                }
            },
            move |i| {
                let (b, k) = (b.clone(), k2.clone());
                async move {
                    let txn = b.begin_read().unwrap();
                    let table = txn.open_table(TABLE).unwrap();
                    let value = table.get(k[i % k.len()].as_str()).unwrap().unwrap();
                    std::hint::black_box(Bytes::copy_from_slice(value.value()));
                }
            },
        );

        let (s, k, v) = (store.clone(), keys.clone(), value.clone());
        let (b, k2, v2) = (bare.clone(), keys.clone(), value.clone());
        bench_against(
            c,
            &rt,
            "file/put",
            concurrency,
            move |i| {
                let (s, k, v) = (s.clone(), k.clone(), v.clone());
                async move {
                    s.put(&k[i % k.len()], v).await.unwrap();
                }
            },
            move |i| {
                let (b, key, v) = (b.clone(), k2[i % k2.len()].clone(), v2.clone());
                async move {
                    if concurrency == 1 {
                        // The fastest a single writer gets: the commit inline.
                        bare_put(&b, &key, &v);
                    } else {
                        tokio::task::spawn_blocking(move || bare_put(&b, &key, &v))
                            .await
                            .unwrap();
                    }
                }
            },
        );
    }
}

criterion_group!(benches, file);
criterion_main!(benches);
