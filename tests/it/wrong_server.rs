//! A URL pointed at the wrong kind of server (a Redis URL at Consul's HTTP
//! port, an etcd URL at Consul, ...) fails at `connect` with one line that
//! says the server there may not be what the URL names.

use crate::support::server_addr;

#[tokio::test]
async fn a_url_at_the_wrong_kind_of_server_says_so() {
    let test = "a_url_at_the_wrong_kind_of_server_says_so";
    let (Some(consul), Some(etcd), Some(redis)) = (
        server_addr("KV_CONSUL_ADDR", test),
        server_addr("KV_ETCD35_ADDR", test),
        server_addr("KV_REDIS_ADDR", test),
    ) else {
        return;
    };
    let cases = [
        (format!("redis://{consul}?timeout=2s"), "Redis"),
        (format!("redis://{etcd}?timeout=2s"), "Redis"),
        (format!("consul://{redis}?timeout=2s"), "Consul"),
        (format!("consul://{etcd}?timeout=2s"), "Consul"),
        (format!("etcd://{redis}?timeout=2s"), "etcd"),
        (format!("etcd://{consul}?timeout=2s"), "etcd"),
    ];
    // And over gRPC, which meets an HTTP/1.1 server or Redis at HTTP/2.
    #[cfg(feature = "grpc")]
    let cases = cases.into_iter().chain([
        (format!("etcd://{redis}?timeout=2s&transport=grpc"), "etcd"),
        (format!("etcd://{consul}?timeout=2s&transport=grpc"), "etcd"),
    ]);
    let mut failures = Vec::new();
    for (url, kind) in cases {
        let message = match kvmesh::connect(&url).await {
            Ok(store) => panic!("{url} connected to the wrong kind of server: {store:?}"),
            Err(error) => error.to_string(),
        };
        eprintln!("{url}: {message}");
        let says = message.contains(&format!("does not speak the {kind}"))
            || message.contains(&format!("is it a {kind}"))
            || message.contains(&format!("is it an {kind}"));
        if message.contains('\n') || !says {
            failures.push(format!("{url}: {message}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
