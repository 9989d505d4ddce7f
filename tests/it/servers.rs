//! Smoke tests of the real servers that `scripts/servers up` starts: write a
//! key and read it back over plain HTTP through hyper, with no kvmesh code in
//! the way. If these fail, the backend tests cannot mean anything.

use crate::support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send(
    client: &HttpClient,
    method: Method,
    uri: String,
    body: impl Into<Bytes>,
) -> (u16, Bytes) {
    let request = Request::builder()
        .method(method)
        .uri(&uri)
        .body(Full::new(body.into()))
        .expect("a valid request");
    let response = client
        .request(request)
        .await
        .unwrap_or_else(|e| panic!("{uri}: {e}"));
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a whole body")
        .to_bytes();
    (status, body)
}

fn unique_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("kvtest/smoke/{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn consul_writes_and_reads_a_key() {
    let Some(addr) = support::server_addr("KV_CONSUL_ADDR", "consul_writes_and_reads_a_key") else {
        return;
    };
    let client = client();
    let key = unique_key();
    let (status, body) = send(
        &client,
        Method::PUT,
        format!("http://{addr}/v1/kv/{key}"),
        "hello consul",
    )
    .await;
    assert_eq!((status, &body[..]), (200, &b"true"[..]));
    let (status, body) = send(
        &client,
        Method::GET,
        format!("http://{addr}/v1/kv/{key}?raw"),
        "",
    )
    .await;
    assert_eq!((status, &body[..]), (200, &b"hello consul"[..]));
    let (status, _) = send(
        &client,
        Method::DELETE,
        format!("http://{addr}/v1/kv/{key}"),
        "",
    )
    .await;
    assert_eq!(status, 200);
}

async fn etcd_writes_and_reads_a_key(var: &str, test: &str) {
    let Some(addr) = support::server_addr(var, test) else {
        return;
    };
    let client = client();
    let key = BASE64.encode(unique_key());
    let value = BASE64.encode("hello etcd");
    let put = serde_json::json!({ "key": key, "value": value }).to_string();
    let (status, body) = send(
        &client,
        Method::POST,
        format!("http://{addr}/v3/kv/put"),
        put,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let range = serde_json::json!({ "key": key }).to_string();
    let (status, body) = send(
        &client,
        Method::POST,
        format!("http://{addr}/v3/kv/range"),
        range,
    )
    .await;
    assert_eq!(status, 200);
    let reply: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(reply["kvs"][0]["value"], value);
    let delete = serde_json::json!({ "key": key }).to_string();
    let (status, _) = send(
        &client,
        Method::POST,
        format!("http://{addr}/v3/kv/deleterange"),
        delete,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn etcd34_writes_and_reads_a_key() {
    etcd_writes_and_reads_a_key("KV_ETCD_ADDR", "etcd34_writes_and_reads_a_key").await;
}

#[tokio::test]
async fn etcd35_writes_and_reads_a_key() {
    etcd_writes_and_reads_a_key("KV_ETCD35_ADDR", "etcd35_writes_and_reads_a_key").await;
}
