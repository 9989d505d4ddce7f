#![allow(dead_code)] // each bench uses the watcher of its own backend
//! The baseline of the watch-latency benches: a minimal watcher per key on a
//! bare hyper client (Consul: a loop of blocking GETs; etcd: one raw
//! `/v3/watch` stream), which signals each change on a channel, with no
//! parsing beyond the index header or the word `"events"`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use tokio::sync::mpsc;

use crate::wire_limit::Bare;

/// A bare Consul watcher of `key`: one signal per change.
pub fn consul_watcher(client: Bare, addr: String, key: String) -> mpsc::UnboundedReceiver<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut index = String::from("0");
        loop {
            let uri = format!("http://{addr}/v1/kv/{key}?index={index}&wait=60s");
            let request = Request::builder()
                .method(Method::GET)
                .uri(uri)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let Ok(response) = client.request(request).await else {
                return;
            };
            let next = response
                .headers()
                .get("x-consul-index")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("0")
                .to_owned();
            let _ = response.into_body().collect().await;
            if next != index && index != "0" && tx.send(()).is_err() {
                return;
            }
            index = next;
        }
    });
    rx
}

/// A bare etcd watcher of `key` on its own stream: one signal per event line.
pub fn etcd_watcher(client: Bare, addr: String, key: String) -> mpsc::UnboundedReceiver<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let body = format!(
            r#"{{"create_request":{{"key":"{}"}}}}"#,
            BASE64.encode(&key)
        );
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{addr}/v3/watch"))
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let Ok(response) = client.request(request).await else {
            return;
        };
        let mut body = response.into_body();
        let mut line = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            for byte in data {
                if byte != b'\n' {
                    line.push(byte);
                    continue;
                }
                let text = std::mem::take(&mut line);
                if text.windows(8).any(|w| w == b"\"events\"") && tx.send(()).is_err() {
                    return;
                }
            }
        }
    });
    rx
}
