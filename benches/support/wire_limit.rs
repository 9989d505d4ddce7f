//! The baseline of the network benches: the same request as kvstore sends,
//! hand-written, through a bare pooled hyper-util client, with minimal
//! handling of the reply (status check, body collected). The wire limit of
//! an HTTP/1.1 design.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkGroup, BenchmarkId, measurement::WallTime};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

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

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Benchmarks `op` with `concurrency` calls in flight per iteration; the
/// reported time is per batch, so ops/s = concurrency / time.
pub fn bench_concurrent<F, Fut>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    concurrency: usize,
    op: F,
) where
    F: Fn(usize) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    group.bench_function(BenchmarkId::new(name, concurrency), |b| {
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
