//! Open/drop cycles leave nothing behind: after 10,000 watches and 10,000
//! locks, each dropped, the tokio tasks, the upstream connections and the
//! server's sessions (Consul) or leases (etcd) are back where they started.
//! (The registry itself is checked in the unit tests of `src/watch.rs`.)

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use support::unique;

use kvmesh::{Bytes, Store, WatchOptions};

const CYCLES: usize = 10_000;

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits (up to 30 s) until `now()` is at most `limit`; panics with `what`.
async fn settles(what: &str, limit: usize, now: impl AsyncFn() -> usize) {
    settles_within(Duration::from_secs(30), what, limit, now).await;
}

/// Waits up to `wait` until `now()` is at most `limit`; panics with `what`.
async fn settles_within(wait: Duration, what: &str, limit: usize, now: impl AsyncFn() -> usize) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let value = now().await;
        if value <= limit {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {value}, expected at most {limit}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn cycle(store: &Arc<dyn Store>, prefix: &str) {
    let started = Instant::now();
    for i in 0..CYCLES {
        let watch = store
            .watch(&format!("{prefix}w{}", i % 100), WatchOptions::default())
            .await
            .unwrap();
        drop(watch);
    }
    let watches = started.elapsed();
    for i in 0..CYCLES {
        let lock = store
            .acquire(&format!("{prefix}l{i}"), Bytes::new())
            .await
            .unwrap();
        drop(lock);
    }
    eprintln!(
        "{CYCLES} watch cycles in {watches:?}, {CYCLES} lock cycles in {:?}",
        started.elapsed() - watches
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_cycles_leave_nothing() {
    let store = kvmesh::connect("memory://").await.unwrap();
    let tasks = alive_tasks();
    cycle(&store, "").await;
    settles("tasks", tasks, async || alive_tasks()).await;
    assert!(
        store.get_range("").await.unwrap().is_empty(),
        "dropped locks deleted their keys"
    );
}

async fn count(addr: &str, path: &str, field: &str) -> usize {
    let body = if path.starts_with("/v3") {
        support::http_post(&format!("http://{addr}{path}"), "{}".into()).await
    } else {
        support::http_get(&format!("http://{addr}{path}")).await
    };
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let list = if field.is_empty() {
        &value
    } else {
        &value[field]
    };
    list.as_array().map_or(0, Vec::len)
}

async fn network_cycles(scheme: &str, addr: &str, resources: (&str, &str), case: &str) {
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    // etcd over its gateway: the pool's connections are what is counted.
    let transport = if scheme == "etcd" {
        "&transport=http"
    } else {
        ""
    };
    let store = kvmesh::connect(&format!("{scheme}://{addr}?lock_ttl=10s{transport}"))
        .await
        .unwrap();
    let (path, field) = resources;
    store.get("warm-up").await.unwrap();
    let tasks = alive_tasks();
    let held = count(addr, path, field).await;
    cycle(&store, &unique(case)).await;
    settles("sessions or leases", held, async || {
        count(addr, path, field).await
    })
    .await;
    // Background work at the end of the cycles (lease revokes, the last
    // keep-alives) can leave more connections idle in the pool than are
    // in use; the pool's timer closes an idle one within two ticks of its
    // 60 s idle timeout (without that timer, 5 stayed open for good). A
    // connection still held (a stream left open) stays.
    settles_within(Duration::from_secs(150), "connections", 4, async || {
        support::tcp_connections_to(port)
    })
    .await;
    // The pool keeps one task per idle connection (closed after 60 s idle).
    let pooled = support::tcp_connections_to(port);
    settles(
        "tasks beyond one per pooled connection",
        tasks + pooled,
        async || alive_tasks(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_cycles_leave_nothing() {
    let Some(addr) = support::server_addr("KV_CONSUL_ADDR", "consul_cycles_leave_nothing") else {
        return;
    };
    network_cycles("consul", &addr, ("/v1/session/list", ""), "consul-cycles").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cycles_leave_nothing() {
    let Some(addr) = support::server_addr("KV_ETCD35_ADDR", "etcd_cycles_leave_nothing") else {
        return;
    };
    network_cycles("etcd", &addr, ("/v3/lease/leases", "leases"), "etcd-cycles").await;
}

/// A burst of requests leaves idle connections in the pool; they close
/// once idle for the pool's 60 s timeout (checked every 60 s). Without the
/// pool's timer, hyper-util closes an idle connection only when a later
/// request looks at it, and these stayed open for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_after_a_burst() {
    // Not the etcd 3.5 server of `etcd_cycles_leave_nothing`: connections
    // are counted by port, in this process.
    let Some(addr) = support::server_addr("KV_ETCD_ADDR", "idle_connections_close_after_a_burst")
    else {
        return;
    };
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let store = kvmesh::connect(&format!("etcd://{addr}?transport=http"))
        .await
        .unwrap();
    let prefix = unique("idle-burst");
    let burst = (0..16).map(|i| {
        let (store, key) = (store.clone(), format!("{prefix}/{i}"));
        async move { store.get(&key).await.unwrap() }
    });
    futures::future::join_all(burst).await;
    let opened = support::tcp_connections_to(port);
    assert!(opened > 1, "the burst opened {opened} connection(s)");
    // Two ticks at most: 120 s measured, with room for a loaded machine.
    settles_within(
        Duration::from_secs(200),
        "idle connections",
        0,
        async || support::tcp_connections_to(port),
    )
    .await;
}

/// 2,000 requests at once through one store while 100 watches are open:
/// every one succeeds, and the store never holds more connections to the
/// server than its documented bound (48 for requests, plus Consul's 64
/// blocking queries or etcd's one stream per watched prefix). Consul
/// refuses a client more than 200 (429): unbounded, this burst opened
/// ~2,000.
async fn burst_under_watches(store: Arc<dyn Store>, port: u16, prefix: &str, bound: usize) {
    let mut watches = Vec::new();
    for i in 0..100 {
        let watch = store
            .watch_range(&format!("{prefix}w{i}/"), WatchOptions::default())
            .await
            .unwrap();
        watches.push(watch);
    }
    let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sampler = {
        let most = most.clone();
        tokio::spawn(async move {
            loop {
                let now = support::tcp_connections_to(port);
                most.fetch_max(now, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let requests = (0..2_000).map(|i| {
        let (store, key) = (store.clone(), format!("{prefix}k{}", i % 200));
        tokio::spawn(async move {
            if i % 2 == 0 {
                store.put(&key, Bytes::from("v")).await
            } else {
                store.delete(&key).await
            }
        })
    });
    for (i, done) in futures::future::join_all(requests)
        .await
        .into_iter()
        .enumerate()
    {
        done.unwrap()
            .unwrap_or_else(|e| panic!("request {i} of the burst failed: {e:?}"));
    }
    sampler.abort();
    let most = most.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("at most {most} connections to port {port} (bound {bound})");
    assert!(most <= bound, "{most} connections, more than {bound}");
    drop(watches);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_burst_stays_within_the_connection_bound() {
    // The production-mode server: no other case of this binary uses it, so
    // every connection to its port is this case's.
    let test = "consul_burst_stays_within_the_connection_bound";
    let Some(addr) = support::server_addr("KV_CONSUL_SERVER_ADDR", test) else {
        return;
    };
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let store = kvmesh::connect(&format!("consul://{addr}")).await.unwrap();
    burst_under_watches(store, port, &unique("consul-burst"), 48 + 64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_burst_stays_within_the_connection_bound() {
    // The auth server: no other case of this binary uses it.
    let test = "etcd_burst_stays_within_the_connection_bound";
    let (Some(addr), Some(user), Some(password)) = (
        support::server_addr("KV_ETCD_AUTH_ADDR", test),
        support::server_addr("KV_ETCD_AUTH_USER", test),
        support::server_addr("KV_ETCD_AUTH_PASSWORD", test),
    ) else {
        return;
    };
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let config = kvmesh::Config::default()
        .with_credentials(user, password)
        .with_etcd_transport(kvmesh::EtcdTransport::Http);
    let store = kvmesh::create_store(kvmesh::Backend::Etcd, &[&addr], config).unwrap();
    // One stream per watched prefix, plus the requests' 48.
    burst_under_watches(store, port, &unique("etcd-burst"), 48 + 100).await;
}

/// Over gRPC, the same burst with 100 watches open goes over one
/// connection: every call, watch and keep-alive of the store shares the
/// member's HTTP/2 connection (and the watches one stream).
#[cfg(feature = "grpc")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_grpc_burst_uses_one_connection() {
    // A member of the cluster: no other case of this binary uses it.
    let test = "etcd_grpc_burst_uses_one_connection";
    let Some(cluster) = support::server_addr("KV_ETCD_CLUSTER", test) else {
        return;
    };
    let addr = cluster.split(',').next().unwrap().to_owned();
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let store = kvmesh::connect(&format!("etcd://{addr}?transport=grpc&lock_ttl=5s"))
        .await
        .unwrap();
    let prefix = unique("etcd-grpc-burst");
    // A lock and a TTL key keep leases alive meanwhile.
    let lock = store
        .acquire(&format!("{prefix}lock"), Bytes::new())
        .await
        .unwrap();
    store
        .put_with(
            &format!("{prefix}ttl"),
            Bytes::from("v"),
            kvmesh::PutOptions::ttl(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    let watchers = async || {
        let metrics = support::http_get(&format!("http://{addr}/metrics")).await;
        String::from_utf8_lossy(&metrics)
            .lines()
            .find_map(|line| line.strip_prefix("etcd_debugging_mvcc_watcher_total "))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .expect("etcd's watcher gauge") as usize
    };
    let before = watchers().await;
    burst_under_watches(store, port, &prefix, 1).await;
    drop(lock);
    // The dropped watches were cancelled on the shared stream.
    settles("etcd's watchers", before, watchers).await;
}
