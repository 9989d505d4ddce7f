//! `kvmesh::cache::Cache` beside the store it copies, on every backend the
//! run has (memory and file always; Redis, Consul, etcd with their servers):
//! - `get` from the copy vs the store's own `get` (paired rows, as a ratio);
//! - `open` over 10,000 and 100,000 keys: time, and memory per key (the
//!   bytes the open left allocated, counted by the global allocator);
//! - put → the change seen, p50 and p99, through the copy's `changes()` vs
//!   through a bare watch of the store, in turns.
//!
//! Run with `scripts/bench cache` or `cargo bench --bench cache`; under
//! `cargo test` each part runs once, on a few keys.
#![allow(missing_docs, unreachable_pub)]

#[path = "support/paired.rs"]
mod paired;
#[allow(dead_code)]
#[path = "support/wire_limit.rs"]
mod wire_limit;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use kvmesh::cache::Cache;
use kvmesh::{Store, WatchOptions};
use wire_limit::{runtime, server_addr};

/// `cargo bench` measures; `cargo test` only shows that each part works.
fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|arg| arg == flag);
    has("--bench") && !has("--test") && !has("--list")
}

/// The stores of this run: (name, URL, the key counts `open` is timed at).
fn backends(dir: &std::path::Path) -> Vec<(&'static str, String, Vec<usize>)> {
    let (small, large) = if measuring() {
        (vec![10_000], vec![10_000, 100_000])
    } else {
        (vec![100], vec![100])
    };
    let mut all = vec![("memory", "memory://".to_owned(), large.clone())];
    if cfg!(feature = "file") {
        let file = format!("file://{}", dir.join("cache.redb").display());
        all.push(("file", file, large.clone()));
    }
    if cfg!(feature = "redis")
        && let Some(addr) = server_addr("KV_REDIS_ADDR", "cache")
    {
        all.push((
            "redis",
            format!("redis://{addr}?namespace=kvbench-cache"),
            large,
        ));
    }
    if cfg!(feature = "consul") {
        let production = std::env::var("KV_CONSUL_SERVER_ADDR").ok();
        if let Some(addr) = production.or_else(|| server_addr("KV_CONSUL_ADDR", "cache")) {
            all.push(("consul", format!("consul://{addr}"), small.clone()));
        }
    }
    if cfg!(feature = "etcd")
        && let Some(addr) = server_addr("KV_ETCD35_ADDR", "cache")
    {
        all.push(("etcd", format!("etcd://{addr}"), small));
    }
    all
}

/// Writes `n` keys under `prefix`, 64 at a time.
async fn fill(store: &Arc<dyn Store>, prefix: &str, n: usize) {
    store.delete_range(prefix).await.unwrap();
    let value = Bytes::from_static(b"10.0.0.1:7000 zone=a weight=10");
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let writes = chunk
            .iter()
            .map(|i| store.put_owned(format!("{prefix}{i:06}"), value.clone()));
        futures::future::try_join_all(writes).await.unwrap();
    }
}

/// The system allocator, counting the bytes in use: what a copy keeps is
/// what its `open` leaves allocated.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call goes to the system allocator unchanged; the counter
// only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        IN_USE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        IN_USE.fetch_add(new_size, Ordering::Relaxed);
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn in_use() -> usize {
    IN_USE.load(Ordering::Relaxed)
}

fn open_rows(rt: &tokio::runtime::Runtime, name: &str, store: &Arc<dyn Store>, sizes: &[usize]) {
    for &n in sizes {
        let prefix = format!("kvbench/cache-open/{n}/");
        rt.block_on(fill(store, &prefix, n));
        let before = in_use();
        let started = Instant::now();
        let cache = rt.block_on(Cache::open(store.clone(), &prefix)).unwrap();
        let took = started.elapsed();
        let grown = in_use().saturating_sub(before);
        assert_eq!(cache.len(), n);
        println!(
            "open cache-{name}/{n}: {:.1} ms, {:.2} µs and {} bytes per key",
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e6 / n as f64,
            grown / n
        );
        drop(cache);
        rt.block_on(store.delete_range(&prefix)).unwrap();
    }
}

fn get_row(rt: &tokio::runtime::Runtime, name: &str, store: &Arc<dyn Store>) {
    let prefix = "kvbench/cache-get/";
    rt.block_on(fill(store, prefix, 100));
    let cache = rt.block_on(Cache::open(store.clone(), prefix)).unwrap();
    let keys: Arc<Vec<String>> = Arc::new((0..100).map(|i| format!("{prefix}{i:06}")).collect());
    let (c, k) = (cache.clone(), keys.clone());
    let from_copy = move |i: usize| {
        let pair = c.get(&k[i % k.len()]);
        async move {
            std::hint::black_box(pair.unwrap());
        }
    };
    let (s, k2) = (store.clone(), keys.clone());
    let from_store = move |i: usize| {
        let (s, key) = (s.clone(), k2[i % k2.len()].clone());
        async move {
            std::hint::black_box(s.get(&key).await.unwrap().unwrap());
        }
    };
    paired::compare(
        rt,
        &format!("cache-{name}/get"),
        1,
        &from_copy,
        "store",
        &from_store,
    );
}

/// put → change seen, through the copy and through a bare watch, in turns.
fn latency_rows(rt: &tokio::runtime::Runtime, name: &str, store: &Arc<dyn Store>) {
    let rounds = if measuring() { 300 } else { 3 };
    let (cached, watched) = (
        "kvbench/cache-latency/cached/",
        "kvbench/cache-latency/watched/",
    );
    let (mut through_copy, mut through_watch) = (Vec::new(), Vec::new());
    rt.block_on(async {
        store.delete_range(cached).await.unwrap();
        let cache = Cache::open(store.clone(), cached).await.unwrap();
        let mut changes = cache.changes();
        store.delete_range(watched).await.unwrap();
        // Both start on an empty prefix: no initial state to read past.
        let mut watch = store
            .watch_range(watched, WatchOptions::default())
            .await
            .unwrap();
        for i in 0..rounds {
            // A new value each time: Consul makes no new version of a write
            // that changes nothing.
            let value = Bytes::from(format!("10.0.0.1:{i}"));
            let started = Instant::now();
            store
                .put(&format!("{cached}k{}", i % 10), value.clone())
                .await
                .unwrap();
            changes.next().await.unwrap().unwrap();
            through_copy.push(started.elapsed());
            let started = Instant::now();
            store
                .put(&format!("{watched}k{}", i % 10), value.clone())
                .await
                .unwrap();
            watch.next().await.unwrap().unwrap();
            through_watch.push(started.elapsed());
        }
    });
    for (side, latencies) in [("cache", &mut through_copy), ("store", &mut through_watch)] {
        latencies.sort();
        let at = |q: usize| latencies[(latencies.len() - 1) * q / 100].as_secs_f64() * 1e6;
        println!(
            "latency cache-{name}/watch/{side}/1: p50 {:.1} p99 {:.1} n {}",
            at(50),
            at(99),
            latencies.len()
        );
    }
}

fn main() {
    let dir = std::env::temp_dir().join(format!("kvbench-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rt = runtime();
    for (name, url, sizes) in backends(&dir) {
        let store = rt.block_on(kvmesh::connect(&url)).unwrap();
        get_row(&rt, name, &store);
        latency_rows(&rt, name, &store);
        open_rows(&rt, name, &store, &sizes);
        drop(store);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `put` with owned arguments, so that many can be in flight at once.
trait PutOwned {
    fn put_owned(
        &self,
        key: String,
        value: Bytes,
    ) -> futures::future::BoxFuture<'_, kvmesh::Result<()>>;
}

impl PutOwned for Arc<dyn Store> {
    fn put_owned(
        &self,
        key: String,
        value: Bytes,
    ) -> futures::future::BoxFuture<'_, kvmesh::Result<()>> {
        Box::pin(async move { self.put(&key, value).await })
    }
}
