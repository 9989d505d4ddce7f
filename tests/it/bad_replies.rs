//! What a server must never be able to do to kvmesh: every broken reply a
//! scripted fake server can produce — truncated JSON, wrong types, absurd
//! numbers, a missing header, a 10 GB Content-Length, an endless chunked
//! body, no answer at all — is a typed error in bounded time and memory,
//! never a panic. (Only the fake can produce these on demand; the real
//! servers are tested everywhere else.)

use crate::support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use kvmesh::{Bytes, Error, KvEvent, KvPair, WatchOptions};
use support::fake_http::{Answer, FakeServer, Framing};

/// A store on a fake server that answers every request with `answer()`.
async fn store_on(
    scheme: &str,
    answer: fn() -> Answer,
) -> (std::sync::Arc<dyn kvmesh::Store>, FakeServer) {
    let server = FakeServer::start(move |_, _| answer()).await;
    // The fake etcd is its JSON gateway (HTTP/1.1).
    let transport = if scheme == "etcd" {
        "&transport=http"
    } else {
        ""
    };
    let url = format!("{scheme}://{}?timeout=2s{transport}", server.addr);
    let store = kvmesh::connect_lazy(&url).unwrap();
    (store, server)
}

fn consul_ok(body: &str) -> Answer {
    Answer::new(200, body).header("x-consul-index", "7")
}

/// Runs `get` and checks the error is typed, prompt, and of the expected kind.
async fn expect_get_error(
    scheme: &str,
    answer: fn() -> Answer,
    expected: fn(&Error) -> bool,
    what: &str,
) {
    let (store, _server) = store_on(scheme, answer).await;
    let started = Instant::now();
    let result = store.get("k").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{what}: took {:?}",
        started.elapsed()
    );
    match result {
        Err(error) if expected(&error) => {}
        other => panic!("{scheme} {what}: unexpected {other:?}"),
    }
}

fn malformed(e: &Error) -> bool {
    matches!(e, Error::MalformedReply { .. })
}

#[tokio::test]
async fn consul_broken_replies_are_typed_errors() {
    expect_get_error(
        "consul",
        || consul_ok(r#"[{"Key":"k","Val"#),
        malformed,
        "truncated JSON",
    )
    .await;
    expect_get_error(
        "consul",
        || consul_ok(r#"[{"Key":5,"ModifyIndex":"x"}]"#),
        malformed,
        "wrong types",
    )
    .await;
    expect_get_error(
        "consul",
        || consul_ok(r#"[{"Key":"k","ModifyIndex":1e30}]"#),
        malformed,
        "absurd index",
    )
    .await;
    expect_get_error(
        "consul",
        || consul_ok(r#"[{"Key":"k","ModifyIndex":-1}]"#),
        malformed,
        "negative index",
    )
    .await;
    expect_get_error(
        "consul",
        || consul_ok(r#"[{"Key":"k","Value":"%%%","ModifyIndex":3}]"#),
        malformed,
        "bad base64",
    )
    .await;
    expect_get_error(
        "consul",
        || consul_ok(r#"{"not":"an array"}"#),
        malformed,
        "an object",
    )
    .await;
    expect_get_error(
        "consul",
        || Answer::new(200, "[]"),
        malformed,
        "no X-Consul-Index",
    )
    .await;
    expect_get_error(
        "consul",
        || Answer::new(418, "teapot"),
        malformed,
        "an odd status",
    )
    .await;
    expect_get_error(
        "consul",
        || Answer::new(503, "down"),
        Error::is_retryable,
        "a 5xx",
    )
    .await;
}

#[tokio::test]
async fn etcd_broken_replies_are_typed_errors() {
    expect_get_error(
        "etcd",
        || Answer::new(200, r#"{"header":{"revision":"3"},"kvs":[{"key":"aw=="#),
        malformed,
        "truncated JSON",
    )
    .await;
    expect_get_error(
        "etcd",
        || Answer::new(200, r#"{"kvs":"many"}"#),
        malformed,
        "wrong types",
    )
    .await;
    expect_get_error(
        "etcd",
        || {
            Answer::new(
                200,
                r#"{"kvs":[{"key":"aw==","mod_revision":"99999999999999999999999"}]}"#,
            )
        },
        malformed,
        "absurd revision",
    )
    .await;
    expect_get_error(
        "etcd",
        || Answer::new(200, r#"{"kvs":[{"key":"aw==","mod_revision":"0"}]}"#),
        malformed,
        "revision 0",
    )
    .await;
    expect_get_error(
        "etcd",
        || Answer::new(200, r#"{"kvs":[{"key":"/w==","mod_revision":"2"}]}"#),
        malformed,
        "a non-UTF-8 key",
    )
    .await;
    expect_get_error(
        "etcd",
        || Answer::new(500, "<html>oops</html>"),
        malformed,
        "HTML error",
    )
    .await;
}

#[tokio::test]
async fn oversized_endless_and_silent_replies_are_bounded() {
    for scheme in ["consul", "etcd"] {
        // A 10 GB Content-Length is refused up front, not buffered.
        expect_get_error(
            scheme,
            || consul_ok("[]").framing(Framing::Claims(10 * 1024 * 1024 * 1024)),
            malformed,
            "10 GB Content-Length",
        )
        .await;
        // An endless body is cut at the reply cap (64 MiB).
        expect_get_error(
            scheme,
            || consul_ok("").framing(Framing::Endless),
            malformed,
            "an endless body",
        )
        .await;
        // A server that never answers: the configured timeout (2 s).
        expect_get_error(
            scheme,
            || consul_ok("[]").delay(Duration::from_secs(60)),
            |e| matches!(e, Error::Timeout { .. }),
            "no answer",
        )
        .await;
    }
}

/// A watch of `k` on a fake etcd that answers every watch request with
/// `stream()` and anything else with an empty reply at revision 3; the
/// server and the store live as long as the watch is used.
async fn watch_on_fake_etcd(
    stream: impl Fn() -> Answer + Send + Sync + 'static,
) -> (FakeServer, std::sync::Arc<dyn kvmesh::Store>, kvmesh::Watch) {
    let server = FakeServer::start(move |_, line| {
        if line.starts_with("POST /v3/watch") {
            stream()
        } else {
            Answer::new(200, r#"{"header":{"revision":"3"}}"#)
        }
    })
    .await;
    let store = kvmesh::connect(&format!("etcd://{}?transport=http", server.addr))
        .await
        .unwrap();
    let watch = store.watch("k", WatchOptions::default()).await.unwrap();
    (server, store, watch)
}

#[tokio::test]
async fn a_malformed_watch_line_ends_the_watch_with_an_error() {
    let (_server, _store, mut watch) = watch_on_fake_etcd(|| {
        Answer::new(
            200,
            "{\"result\":{\"created\":true}}\n{\"result\":{\"events\":[{\"kv\":{\"key\":5}}]}}\n",
        )
    })
    .await;
    match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
        Ok(Some(Err(Error::MalformedReply { .. }))) => {}
        other => panic!("expected a MalformedReply, got {other:?}"),
    }
    assert!(
        watch.next().await.is_none(),
        "the watch ends after its error"
    );
}

#[tokio::test]
async fn watch_lines_that_arrive_in_pieces_are_joined() {
    let lines = concat!(
        r#"{"result":{"header":{"revision":"3"},"created":true}}"#,
        "\n",
        r#"{"result":{"header":{"revision":"4"},"events":[{"kv":{"key":"aw==","create_revision":"4","mod_revision":"4","version":"1","value":"dg=="}}]}}"#,
        "\n\n",
        r#"{"result":{"header":{"revision":"5"},"events":[{"type":"DELETE","kv":{"key":"aw==","mod_revision":"5"}}]}}"#,
        "\n",
    );
    for size in [1, 7, 64] {
        let (_server, _store, mut watch) =
            watch_on_fake_etcd(move || Answer::new(200, lines).framing(Framing::Pieces(size)))
                .await;
        let mut next = async || {
            tokio::time::timeout(Duration::from_secs(10), watch.next())
                .await
                .expect("an event")
                .expect("the watch goes on")
                .expect("not an error")
        };
        let put = KvEvent::Put(KvPair {
            key: "k".into(),
            value: Bytes::from("v"),
            version: 4,
        });
        assert_eq!(next().await, put, "pieces of {size} bytes");
        let delete = KvEvent::Delete {
            key: "k".into(),
            version: 5,
        };
        assert_eq!(next().await, delete, "pieces of {size} bytes");
    }
}

#[tokio::test]
async fn writes_to_a_dead_server_fail_promptly() {
    let store = kvmesh::connect_lazy("etcd://127.0.0.1:1?timeout=1s").unwrap();
    let started = Instant::now();
    let error = store.put("k", Bytes::from("v")).await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(8));
}

/// A 429 (Consul's "too many connections" or a rate limit) is retried with
/// backoff for idempotent requests, then is `Overloaded`, retryable, never
/// `Unreachable`; a write that is not idempotent is `Overloaded` at once.
#[tokio::test]
async fn overloaded_servers_are_retried_then_named() {
    let refusals = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = refusals.clone();
    let server = FakeServer::start(move |_, _| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            Answer::new(429, "Your IP is issuing too many concurrent connections")
        } else {
            consul_ok("[]")
        }
    })
    .await;
    let store = kvmesh::connect(&format!("consul://{}", server.addr))
        .await
        .unwrap();
    assert_eq!(
        store.get("k").await.unwrap(),
        None,
        "two 429s, then an answer"
    );

    let (store, _server) = store_on("consul", || Answer::new(429, "slow down")).await;
    match store.get("k").await {
        Err(e @ Error::Overloaded { .. }) => assert!(e.is_retryable()),
        other => panic!("expected Overloaded, got {other:?}"),
    }
    match store.atomic_put("k", Bytes::from("v"), None).await {
        Err(Error::Overloaded { .. }) => {}
        other => panic!("expected Overloaded, got {other:?}"),
    }
}

/// `connect` is through when one endpoint answers, refuses with every
/// endpoint named when none does; `connect_lazy` sends nothing.
#[tokio::test]
async fn connect_needs_one_endpoint_that_answers() {
    let test = "connect_needs_one_endpoint_that_answers";
    let (Some(consul), Some(etcd)) = (
        support::server_addr("KV_CONSUL_ADDR", test),
        support::server_addr("KV_ETCD_ADDR", test),
    ) else {
        return;
    };
    for (scheme, live) in [("consul", consul), ("etcd", etcd)] {
        kvmesh::connect(&format!("{scheme}://127.0.0.1:1,{live}?timeout=2s"))
            .await
            .unwrap_or_else(|e| panic!("{scheme}: {e:?}"));
        let dead = format!("{scheme}://127.0.0.1:1,127.0.0.1:2?timeout=1s");
        let error = kvmesh::connect(&dead).await.expect_err("nothing listens");
        assert!(
            matches!(error, kvmesh::Error::Unreachable { .. }),
            "{error:?}"
        );
        let shown = error.to_string();
        assert!(
            shown.contains("http://127.0.0.1:1") && shown.contains("http://127.0.0.1:2"),
            "{shown}"
        );
        let cause = std::error::Error::source(&error).expect("the last failure");
        assert!(
            !shown.contains(&cause.to_string()),
            "{shown} repeats {cause}"
        );
        kvmesh::connect_lazy(&dead).expect("lazy: nothing sent");
    }
}
