//! The baseline of the network benches: the same request as kvmesh sends,
//! hand-written, through a bare pooled hyper-util client, with minimal
//! handling of the reply (status check, body collected). The wire limit of
//! an HTTP/1.1 design.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, measurement::WallTime};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::paired;

pub type Bare = Client<HttpConnector, Full<Bytes>>;

pub fn bare_client() -> Bare {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// One hand-written request; panics unless it answers 200.
pub async fn bare_request(client: &Bare, method: Method, uri: &str, body: Bytes) -> Bytes {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(body))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert!(
        response.status().is_success(),
        "{uri}: {}",
        response.status()
    );
    response.into_body().collect().await.unwrap().to_bytes()
}

/// The address in `variable`, or `None` after saying the `backend` benches
/// are skipped; under `scripts/test` (`KV_REQUIRE_SERVERS`) a missing server
/// fails the run instead.
pub fn server_addr(variable: &str, backend: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(addr) => Some(addr),
        Err(_) if std::env::var_os("KV_REQUIRE_SERVERS").is_some() => {
            panic!(
                "{variable} is not set, and KV_REQUIRE_SERVERS is: the {backend} benches need their server (scripts/servers up --bench)"
            )
        }
        Err(_) => {
            eprintln!(
                "SKIPPED {backend} benches: {variable} is not set (see scripts/servers up --bench)"
            );
            None
        }
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Benchmarks `op` with `concurrency` calls in flight per iteration; the
/// reported time is per batch, so ops/s = concurrency / time. Whether it
/// ran: not when filtered out on the command line.
pub fn bench_concurrent<F, Fut>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    concurrency: usize,
    op: F,
) -> bool
where
    F: Fn(usize) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let mut ran = false;
    group.bench_function(BenchmarkId::new(name, concurrency), |b| {
        ran = true;
        b.to_async(rt).iter_custom(|iters| {
            let op = op.clone();
            async move {
                let start = Instant::now();
                for i in 0..iters as usize {
                    futures::future::join_all((0..concurrency).map(|c| op(i * concurrency + c)))
                        .await;
                }
                start.elapsed()
            }
        })
    });
    ran
}

/// One row of a table: `kvmesh` and `baseline` timed by criterion in the
/// group `id`, then side by side in alternating blocks
/// ([`paired::compare`]). Both are called with a request index,
/// `concurrency` at a time.
pub fn bench_against<A, FA, B, FB>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    id: &str,
    concurrency: usize,
    kvmesh: A,
    baseline: B,
) where
    A: Fn(usize) -> FA + Clone + 'static,
    FA: std::future::Future<Output = ()> + 'static,
    B: Fn(usize) -> FB + Clone + 'static,
    FB: std::future::Future<Output = ()> + 'static,
{
    let mut group = c.benchmark_group(id);
    configure(&mut group);
    let ran = bench_concurrent(&mut group, rt, "kvmesh", concurrency, kvmesh.clone());
    bench_concurrent(&mut group, rt, "baseline", concurrency, baseline.clone());
    group.finish();
    if ran {
        paired::compare(rt, id, concurrency, &kvmesh, "baseline", &baseline);
    }
}

pub fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
}

pub fn keys(prefix: &str, n: usize) -> Arc<Vec<String>> {
    Arc::new((0..n).map(|i| format!("{prefix}{i:04}")).collect())
}

/// A kvmesh watch turned into a signal per event, like the bare watchers
/// (both sides pay the same channel hop). The first `initial` events (the
/// watch's initial state) are skipped.
pub fn signal_events(
    mut watch: kvmesh::Watch,
    initial: usize,
) -> tokio::sync::mpsc::UnboundedReceiver<()> {
    use futures::StreamExt as _;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut seen = 0;
        while let Some(event) = watch.next().await {
            event.unwrap();
            seen += 1;
            if seen > initial && tx.send(()).is_err() {
                return;
            }
        }
    });
    rx
}

static NEXT_VALUE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One side of the watch rows: `keys` written through `store`, each seen by
/// the watcher behind its receiver (kvmesh's or a bare one).
#[derive(Clone)]
pub struct Notifier {
    store: Arc<dyn kvmesh::Store>,
    keys: Arc<Vec<String>>,
    receivers: Arc<Vec<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<()>>>>,
}

impl Notifier {
    pub fn new(
        store: Arc<dyn kvmesh::Store>,
        keys: Vec<String>,
        receivers: Vec<tokio::sync::mpsc::UnboundedReceiver<()>>,
    ) -> Self {
        Notifier {
            store,
            keys: Arc::new(keys),
            receivers: Arc::new(receivers.into_iter().map(tokio::sync::Mutex::new).collect()),
        }
    }

    /// One change: every key written at once, until each key's watcher has
    /// signalled; how long that took.
    pub async fn change(&self) -> Duration {
        let start = Instant::now();
        futures::future::join_all((0..self.keys.len()).map(|i| self.notify(i))).await;
        start.elapsed()
    }

    /// Key `i` (modulo the keys) written, until its watcher has signalled.
    pub async fn notify(&self, i: usize) {
        let i = i % self.keys.len();
        let mut receiver = self.receivers[i].lock().await;
        while receiver.try_recv().is_ok() {}
        // Always a new value: Consul reports no event for a write of the
        // value a key already has.
        let value = Bytes::from(NEXT_VALUE.fetch_add(1, Ordering::Relaxed).to_string());
        let (put, _) =
            futures::future::join(self.store.put(&self.keys[i], value), receiver.recv()).await;
        put.unwrap();
    }
}

/// Put → event received: each iteration is one [`Notifier::change`] of
/// `concurrency` keys at once.
///
/// Besides criterion's estimate, every change's latency is kept and their
/// p50 and p99 printed as `latency <id>: p50 <µs> p99 <µs> n <count>` (at 32
/// in flight a "change" is the batch: 32 puts until all 32 are seen).
pub fn bench_notify(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    id: &str,
    name: &str,
    notifier: &Notifier,
) -> bool {
    let concurrency = notifier.keys.len();
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    group.bench_function(BenchmarkId::new(name, concurrency), |b| {
        b.to_async(rt).iter_custom(|iters| {
            let (notifier, latencies) = (notifier.clone(), latencies.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let latency = notifier.change().await;
                    total += latency;
                    latencies.lock().unwrap().push(latency);
                }
                total
            }
        })
    });
    let mut latencies = latencies.lock().unwrap();
    if latencies.is_empty() {
        return false; // filtered out on the command line
    }
    latencies.sort();
    let at = |q: usize| latencies[(latencies.len() - 1) * q / 100].as_secs_f64() * 1e6;
    println!(
        "latency {id}/{name}/{concurrency}: p50 {:.1} p99 {:.1} n {}",
        at(50),
        at(99),
        latencies.len()
    );
    true
}

/// The watch group of a network bench: `concurrency` keys watched through
/// kvmesh beside as many watched by `bare_watcher`, each side on its own
/// keys, put → event measured on both.
pub fn bench_watch_group(
    c: &mut criterion::Criterion,
    rt: &tokio::runtime::Runtime,
    backend: &str,
    store: Arc<dyn kvmesh::Store>,
    concurrency: usize,
    bare_watcher: impl Fn(String) -> tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    let mut group = c.benchmark_group(format!("{backend}/watch"));
    configure(&mut group);
    let keys = |side: &str| -> Vec<String> {
        (0..concurrency)
            .map(|i| format!("kvbench/{backend}-watch/{side}{i}"))
            .collect()
    };
    let (watched, bare_watched) = (keys("kv"), keys("bare"));
    let receivers = rt.block_on(async {
        let mut receivers = Vec::new();
        for key in watched.iter().chain(&bare_watched) {
            store.put(key, Bytes::from_static(b"start")).await.unwrap();
        }
        for key in &watched {
            let watch = store
                .watch(key, kvmesh::WatchOptions::default())
                .await
                .unwrap();
            receivers.push(signal_events(watch, 1));
        }
        receivers
    });
    let all: Vec<String> = watched.iter().chain(&bare_watched).cloned().collect();
    let id = format!("{backend}/watch");
    let ours = Notifier::new(store.clone(), watched, receivers);
    let ran = bench_notify(&mut group, rt, &id, "kvmesh", &ours);
    let receivers = rt.block_on(async {
        let receivers: Vec<_> = bare_watched.iter().cloned().map(&bare_watcher).collect();
        // Let the bare watchers make their first request before any put.
        tokio::time::sleep(Duration::from_millis(300)).await;
        receivers
    });
    let theirs = Notifier::new(store.clone(), bare_watched, receivers);
    bench_notify(&mut group, rt, &id, "baseline", &theirs);
    group.finish();
    if ran {
        // A batch of `concurrency` calls is one change of all the keys.
        let notify = |notifier: Notifier| {
            move |i: usize| {
                let notifier = notifier.clone();
                async move { notifier.notify(i).await }
            }
        };
        paired::compare(
            rt,
            &id,
            concurrency,
            &notify(ours),
            "baseline",
            &notify(theirs),
        );
    }
    // Every watcher is dropped now, but Consul keeps an abandoned blocking
    // query (and its connection) open until its wait ends or its key
    // changes; a few runs in a row would reach its 200 connections per
    // client. Changing the keys ends them: once to let the watcher tasks see
    // that nobody listens, once more for the queries they had started.
    rt.block_on(async {
        for _ in 0..2 {
            for key in &all {
                store.put(key, Bytes::from_static(b"end")).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        for key in &all {
            store.delete(key).await.unwrap();
        }
    });
}

/// The `get_range` row: kvmesh's listing beside the same bare request
/// (`request`, which returns the reply's body) reading nothing of its reply
/// (`baseline`), and read as a plain serde client reads it
/// (`baseline_parsed`, with `parse`, which returns how many pairs it
/// found: the bench's 100).
pub fn bench_listing<A, FA, R, FR>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    id: &str,
    concurrency: usize,
    kvmesh: A,
    request: R,
    parse: fn(&[u8]) -> usize,
) where
    A: Fn(usize) -> FA + Clone + 'static,
    FA: std::future::Future<Output = ()> + 'static,
    R: Fn() -> FR + Clone + 'static,
    FR: std::future::Future<Output = Bytes> + 'static,
{
    let side = |read: Option<fn(&[u8]) -> usize>| {
        let request = request.clone();
        move |_: usize| {
            let reply = request();
            async move {
                let reply = reply.await;
                if let Some(read) = read {
                    assert_eq!(read(&reply), 100);
                }
            }
        }
    };
    let mut group = c.benchmark_group(id);
    configure(&mut group);
    let ran = bench_concurrent(&mut group, rt, "kvmesh", concurrency, kvmesh.clone());
    let sides = [
        ("baseline", side(None)),
        ("baseline_parsed", side(Some(parse))),
    ];
    for (name, op) in &sides {
        bench_concurrent(&mut group, rt, name, concurrency, op.clone());
    }
    group.finish();
    if ran {
        for (name, op) in &sides {
            paired::compare(rt, id, concurrency, &kvmesh, name, op);
        }
    }
}
