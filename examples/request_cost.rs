//! What one request costs the client, kvmesh against the same request sent
//! by hand on a bare hyper-util client: made to be counted by
//! `valgrind --tool=callgrind`, whose instruction counts hold steady where
//! times on a shared machine do not. `scripts/request-cost` runs it for every
//! operation and prints instructions per request.
//!
//! ```sh
//! cargo build --release --example request_cost
//! target/release/examples/request_cost consul://127.0.0.1:18800 get kvmesh 3200 32
//! ```
//!
//! Arguments: `URL OPERATION SIDE COUNT [IN_FLIGHT]`, with `URL` a
//! `consul://` or `etcd://` server on loopback, `OPERATION` one of `get`,
//! `put`, `atomic_put` (a CAS whose check fails) and `get_range` (100
//! keys), `SIDE` `kvmesh`, `bare` or (for `get_range`) `parsed`: the bare
//! request plus its reply read by serde_json and base64 as a plain client
//! reads it, or `scanned`: the reply read by hand, each pair found by its
//! field names. Keys live under `request-cost/`.

#[path = "../benches/support/parsed_baseline.rs"]
mod parsed_baseline;

use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kvmesh::Store;

const VALUE: &[u8] = b"10.0.0.1:7000";
const KEYS: usize = 32;
const RANGE: &str = "request-cost/range/";

/// The hand-written request of one operation.
struct BareRequest {
    method: Method,
    uri: String,
    body: String,
}

fn bare_request(server: &str, addr: &str, operation: &str, key: &str) -> BareRequest {
    let etcd = |path: &str, body: String| BareRequest {
        method: Method::POST,
        uri: format!("http://{addr}/v3/kv/{path}"),
        body,
    };
    let consul = |method: Method, query: &str| BareRequest {
        uri: format!("http://{addr}/v1/kv/{key}{query}"),
        body: match method {
            Method::PUT => String::from_utf8_lossy(VALUE).into_owned(),
            _ => String::new(),
        },
        method,
    };
    let (k, v) = (BASE64.encode(key), BASE64.encode(VALUE));
    match (server, operation) {
        ("etcd", "get") => etcd("range", format!(r#"{{"key":"{k}"}}"#)),
        ("etcd", "put") => etcd("put", format!(r#"{{"key":"{k}","value":"{v}"}}"#)),
        ("etcd", "atomic_put") => etcd(
            "txn",
            format!(
                r#"{{"compare":[{{"key":"{k}","target":"MOD","result":"EQUAL","mod_revision":"1"}}],"success":[{{"request_put":{{"key":"{k}","value":"{v}"}}}}]}}"#
            ),
        ),
        ("etcd", _) => etcd(
            "range",
            format!(
                r#"{{"key":"{}","range_end":"{}"}}"#,
                BASE64.encode(RANGE),
                BASE64.encode("request-cost/range0")
            ),
        ),
        (_, "get") => consul(Method::GET, ""),
        (_, "put") => consul(Method::PUT, ""),
        (_, "atomic_put") => consul(Method::PUT, "?cas=1"),
        _ => BareRequest {
            method: Method::GET,
            uri: format!("http://{addr}/v1/kv/{RANGE}?recurse"),
            body: String::new(),
        },
    }
}

async fn kvmesh_request(store: &dyn Store, operation: &str, key: &str) {
    match operation {
        "get" => assert!(store.get(key).await.expect("get").is_some()),
        "put" => store
            .put(key, Bytes::from_static(VALUE))
            .await
            .expect("put"),
        "atomic_put" => assert!(
            !store
                .atomic_put(key, Bytes::from_static(VALUE), Some(1))
                .await
                .expect("atomic_put")
        ),
        _ => assert_eq!(store.get_range(RANGE).await.expect("get_range").len(), 100),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, operation, side, count, rest @ ..] = args.as_slice() else {
        eprintln!(
            "usage: request_cost URL get|put|atomic_put|get_range kvmesh|bare|parsed|scanned COUNT [IN_FLIGHT]"
        );
        std::process::exit(2);
    };
    let count: usize = count.parse().expect("COUNT is a number");
    let in_flight: usize = rest
        .first()
        .map_or(1, |n| n.parse().expect("IN_FLIGHT is a number"));
    let (server, addr) = url
        .split_once("://")
        .expect("URL is consul://... or etcd://...");
    let store: Arc<dyn Store> = kvmesh::connect(url).await.expect("connect");
    let keys: Vec<String> = (0..KEYS).map(|i| format!("request-cost/k{i:04}")).collect();
    for key in &keys {
        store
            .put(key, Bytes::from_static(VALUE))
            .await
            .expect("put");
    }
    if operation == "get_range" {
        for i in 0..100 {
            let key = format!("{RANGE}k{i:04}");
            store
                .put(&key, Bytes::from_static(VALUE))
                .await
                .expect("put");
        }
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let bare: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let requests: Vec<BareRequest> = keys
        .iter()
        .map(|key| bare_request(server, addr, operation, key))
        .collect();

    let started = Instant::now();
    for round in 0..count.div_ceil(in_flight) {
        futures::future::join_all((0..in_flight).map(|slot| {
            let index = (round * in_flight + slot) % KEYS;
            let (store, bare, key, request) = (&store, &bare, &keys[index], &requests[index]);
            async move {
                if side != "kvmesh" {
                    let http = hyper::Request::builder()
                        .method(request.method.clone())
                        .uri(&request.uri)
                        .body(Full::new(Bytes::from(request.body.clone())))
                        .expect("a request");
                    let response = bare.request(http).await.expect("a reply");
                    assert!(response.status().is_success() || operation == "atomic_put");
                    let body = response.into_body().collect().await.expect("a body");
                    let body = body.to_bytes();
                    // `parsed`: the reply read as a plain serde client reads it.
                    match (side.as_str(), server) {
                        ("parsed", "etcd") => {
                            std::hint::black_box(parsed_baseline::parse_etcd_range(&body));
                        }
                        ("parsed", _) => {
                            std::hint::black_box(parsed_baseline::parse_consul_listing(&body));
                        }
                        // `scanned`: the reply read by hand, as a lean
                        // client does to hand out its pairs.
                        ("scanned", "etcd") => {
                            std::hint::black_box(parsed_baseline::scan_etcd_range(&body));
                        }
                        ("scanned", _) => {
                            std::hint::black_box(parsed_baseline::scan_consul_listing(&body));
                        }
                        _ => drop(std::hint::black_box(body)),
                    }
                } else {
                    kvmesh_request(store.as_ref(), operation, key).await;
                }
            }
        }))
        .await;
    }
    let per_request = started.elapsed() / count.max(1) as u32;
    eprintln!("{side} {operation} on {server}: {per_request:?} a request");
}
