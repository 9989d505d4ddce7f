//! etcd-specific behaviour against the real servers `scripts/servers`
//! starts: compaction, a server restart under a live watch, lease hygiene and
//! a lock whose holder process is killed. The cases run one at a time
//! (`SERIAL`): one of them restarts etcd 3.4.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use support::unique;

use futures::StreamExt;
use kvmesh::{Bytes, KvEvent, PutOptions, Store, Watch, WatchOptions};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The URL of etcd at `addrs` with `options`, over the transport
/// `KV_ETCD_TRANSPORT` names (`http` or `grpc`; unset: the default), so
/// that `scripts/test` runs every case on both.
fn etcd_url(addrs: &str, options: &str) -> String {
    support::over_etcd_transport(format!("etcd://{addrs}?{options}"))
}

async fn store(var: &str, test: &str, options: &str) -> Option<(Arc<dyn Store>, String)> {
    let addr = support::server_addr(var, test)?;
    let store = kvmesh::connect(&etcd_url(&addr, options)).await.unwrap();
    Some((store, addr))
}

async fn post(addr: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
    let reply = support::http_post(&format!("http://{addr}{path}"), body.to_string()).await;
    serde_json::from_slice(&reply).unwrap()
}

async fn next(watch: &mut Watch) -> KvEvent {
    match tokio::time::timeout(Duration::from_secs(30), watch.next()).await {
        Ok(Some(Ok(event))) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// A cache cut off while etcd compacts the history it would resume from
/// catches up all the same: the difference, as ordinary changes.
#[tokio::test]
async fn a_cache_cut_off_during_a_compaction_catches_up() {
    use kvmesh::cache::{Cache, CacheEvent};
    let _serial = SERIAL.lock().await;
    let test = "a_cache_cut_off_during_a_compaction_catches_up";
    let Some(addr) = support::server_addr("KV_ETCD35_ADDR", test) else {
        return;
    };
    let proxy = support::proxy::FaultProxy::start(&addr).await;
    let watcher = kvmesh::connect(&etcd_url(&proxy.addr, "")).await.unwrap();
    let store = kvmesh::connect(&etcd_url(&addr, "")).await.unwrap();
    let dir = unique("cache-compaction");
    let key = |name: &str| format!("{dir}{name}");
    for name in ["kept", "changed", "deleted"] {
        store.put(&key(name), Bytes::from("1")).await.unwrap();
    }
    let cache = Cache::open(watcher, &dir).await.unwrap();
    let mut changes = cache.changes();

    proxy.cut();
    store.put(&key("changed"), Bytes::from("2")).await.unwrap();
    store.put(&key("changed"), Bytes::from("3")).await.unwrap();
    store.delete(&key("deleted")).await.unwrap();
    store.put(&key("new"), Bytes::from("1")).await.unwrap();
    let now = store.get(&key("new")).await.unwrap().unwrap().version;
    post(
        &addr,
        "/v3/kv/compaction",
        serde_json::json!({ "revision": now.to_string(), "physical": true }),
    )
    .await;
    proxy.restore();

    tokio::time::timeout(Duration::from_secs(60), cache.wait_for(now))
        .await
        .expect("the cache catches up")
        .unwrap();
    assert_eq!(cache.list(), store.get_range(&dir).await.unwrap());
    let mut seen = BTreeSet::new();
    while seen.len() < 3 {
        let change = tokio::time::timeout(Duration::from_secs(20), changes.next())
            .await
            .expect("a change")
            .expect("a live stream")
            .unwrap();
        let name = change.key().trim_start_matches(&dir).to_owned();
        seen.insert(match change {
            CacheEvent::Delete { .. } => format!("delete {name}"),
            _ => format!("put {name}"),
        });
    }
    let expected = ["delete deleted", "put changed", "put new"].map(String::from);
    assert_eq!(seen, BTreeSet::from(expected));
}

#[tokio::test]
async fn a_live_watch_cut_off_during_a_compaction_yields_the_difference() {
    let _serial = SERIAL.lock().await;
    let Some(addr) = support::server_addr(
        "KV_ETCD35_ADDR",
        "a_live_watch_cut_off_during_a_compaction_yields_the_difference",
    ) else {
        return;
    };
    // The watch talks through a proxy that can cut it off; writes go direct.
    let proxy = support::proxy::FaultProxy::start(&addr).await;
    let watcher = kvmesh::connect(&etcd_url(&proxy.addr, "")).await.unwrap();
    let store = kvmesh::connect(&etcd_url(&addr, "")).await.unwrap();
    let dir = unique("compaction");
    let key = |name: &str| format!("{dir}{name}");
    for name in ["kept", "changed", "deleted"] {
        store.put(&key(name), Bytes::from("1")).await.unwrap();
    }
    let mut watch = watcher
        .watch_range(&dir, WatchOptions::default())
        .await
        .unwrap();
    for _ in 0..3 {
        next(&mut watch).await; // the initial state
    }

    proxy.cut();
    store.put(&key("changed"), Bytes::from("2")).await.unwrap();
    store.put(&key("changed"), Bytes::from("3")).await.unwrap();
    store.delete(&key("deleted")).await.unwrap();
    store.put(&key("new"), Bytes::from("1")).await.unwrap();
    let now = store.get(&key("new")).await.unwrap().unwrap().version;
    post(
        &addr,
        "/v3/kv/compaction",
        serde_json::json!({ "revision": now.to_string(), "physical": true }),
    )
    .await;
    proxy.restore();

    // The watch resumes, finds its history compacted, and yields the difference.
    let mut got = Vec::new();
    for _ in 0..3 {
        let event = next(&mut watch).await;
        let label = match &event {
            KvEvent::Put(p) => format!(
                "put {}={}",
                p.key.trim_start_matches(&dir),
                String::from_utf8_lossy(&p.value)
            ),
            KvEvent::Delete { key, .. } => format!("delete {}", key.trim_start_matches(&dir)),
        };
        got.push((event.version(), label));
    }
    let labels: BTreeSet<&str> = got.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        labels,
        BTreeSet::from(["put changed=3", "delete deleted", "put new=1"]),
        "{got:?}"
    );
    assert!(
        got.windows(2).all(|w| w[0].0 <= w[1].0),
        "in version order: {got:?}"
    );
    // And the watch goes on from there, with no gap.
    store.put(&key("kept"), Bytes::from("2")).await.unwrap();
    match next(&mut watch).await {
        KvEvent::Put(p) => assert_eq!((p.key, p.value), (key("kept"), Bytes::from("2"))),
        other => panic!("expected the put of kept, got {other:?}"),
    }
}

#[tokio::test]
async fn resuming_from_a_compacted_version_is_an_error_not_a_gap() {
    let _serial = SERIAL.lock().await;
    let Some((store, addr)) = store(
        "KV_ETCD35_ADDR",
        "resuming_from_a_compacted_version_is_an_error_not_a_gap",
        "",
    )
    .await
    else {
        return;
    };
    let key = unique("compacted-after") + "k";
    store.put(&key, Bytes::from("1")).await.unwrap();
    let old = store.get(&key).await.unwrap().unwrap().version;
    store.put(&key, Bytes::from("2")).await.unwrap();
    let now = store.get(&key).await.unwrap().unwrap().version;
    post(
        &addr,
        "/v3/kv/compaction",
        serde_json::json!({ "revision": now.to_string(), "physical": true }),
    )
    .await;
    match store.watch(&key, WatchOptions::after(old)).await {
        Err(kvmesh::Error::Compacted { requested, .. }) => assert_eq!(requested, old),
        other => panic!("expected Compacted, got {other:?}"),
    }
    // Resuming from a version that is still there works.
    let mut watch = store.watch(&key, WatchOptions::after(now)).await.unwrap();
    store.put(&key, Bytes::from("3")).await.unwrap();
    assert!(matches!(next(&mut watch).await, KvEvent::Put(p) if p.value == "3"));
}

#[tokio::test]
async fn a_watch_survives_an_etcd_restart() {
    let _serial = SERIAL.lock().await;
    let Some((store, _)) = store(
        "KV_ETCD_ADDR",
        "a_watch_survives_an_etcd_restart",
        "timeout=2s",
    )
    .await
    else {
        return;
    };
    let dir = unique("restart");
    let mut watch = store
        .watch_range(&dir, WatchOptions::default())
        .await
        .unwrap();
    for i in 0..5 {
        store
            .put(&format!("{dir}{i}"), Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    // kill -9 and start again on the same data dir.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/servers");
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(script)
            .args(["restart", "etcd34"])
            .status()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(status.success(), "scripts/servers restart etcd34 failed");
    for i in 5..10 {
        let key = format!("{dir}{i}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while let Err(error) = store.put(&key, Bytes::from(i.to_string())).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "etcd never came back: {error}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut seen = Vec::new();
    while seen.len() < 10 {
        match next(&mut watch).await {
            KvEvent::Put(pair) => {
                seen.push((pair.version, pair.key.trim_start_matches(&dir).to_owned()))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let keys: Vec<&str> = seen.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        "nothing lost or repeated: {seen:?}"
    );
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(
        tokio::time::timeout(Duration::from_millis(500), watch.next())
            .await
            .is_err(),
        "no duplicates after"
    );
}

async fn lease_ids(addr: &str) -> BTreeSet<String> {
    let reply = post(addr, "/v3/lease/leases", serde_json::json!({})).await;
    reply["leases"]
        .as_array()
        .map(|leases| {
            leases
                .iter()
                .map(|l| l["ID"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn ttl_puts_leave_no_leases_behind() {
    let _serial = SERIAL.lock().await;
    let Some((store, addr)) = store("KV_ETCD35_ADDR", "ttl_puts_leave_no_leases_behind", "").await
    else {
        return;
    };
    let before = lease_ids(&addr).await;
    let key = unique("leases") + "k";
    for i in 0..100u64 {
        store
            .put_with(
                &key,
                Bytes::from(i.to_string()),
                PutOptions::ttl(Duration::from_secs(30)),
            )
            .await
            .unwrap();
    }
    let during = lease_ids(&addr).await;
    assert_eq!(
        during.difference(&before).count(),
        1,
        "one lease holds the key"
    );
    store.put(&key, Bytes::from("permanent")).await.unwrap();
    assert!(
        lease_ids(&addr).await.difference(&before).next().is_none(),
        "a plain put revokes the lease"
    );
    store
        .put_with(
            &key,
            Bytes::from("again"),
            PutOptions::ttl(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    store.delete(&key).await.unwrap();
    assert!(
        lease_ids(&addr).await.difference(&before).next().is_none(),
        "a delete revokes the lease"
    );
    assert!(store.exists(&key).await.is_ok_and(|e| !e));
}

/// Run as a child process by `a_killed_holder_loses_the_lock_after_its_ttl`.
#[tokio::test]
async fn lock_holder_child() {
    let (Ok(addr), Ok(key)) = (
        std::env::var("KV_CHILD_ETCD"),
        std::env::var("KV_CHILD_KEY"),
    ) else {
        return; // not a child: nothing to do
    };
    let store = kvmesh::connect(&etcd_url(&addr, "lock_ttl=2s"))
        .await
        .unwrap();
    support::hold_until_killed(store, &key).await;
}

#[tokio::test]
async fn a_killed_holder_loses_the_lock_after_its_ttl() {
    let _serial = SERIAL.lock().await;
    let Some((store, addr)) = store(
        "KV_ETCD35_ADDR",
        "a_killed_holder_loses_the_lock_after_its_ttl",
        "lock_ttl=2s",
    )
    .await
    else {
        return;
    };
    let key = unique("killed") + "lock";
    let mut child = support::spawn_child_test(
        "lock_holder_child",
        &[("KV_CHILD_ETCD", &addr), ("KV_CHILD_KEY", &key)],
    );
    support::wait_for_line(&mut child, "HELD").await;
    assert!(
        store
            .try_acquire(&key, Bytes::from("parent"))
            .await
            .unwrap()
            .is_none(),
        "the child holds it"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let started = std::time::Instant::now();
    let lock = tokio::time::timeout(
        Duration::from_secs(15),
        store.acquire(&key, Bytes::from("parent")),
    )
    .await
    .expect("the lease expires and the lock frees up")
    .unwrap();
    eprintln!(
        "the lock was free {:?} after the holder died (lease TTL 2s)",
        started.elapsed()
    );
    assert_eq!(store.get(&key).await.unwrap().unwrap().value, "parent");
    lock.release().await.unwrap();
}

/// A semaphore permit of a killed process frees after the lock TTL.
#[tokio::test]
async fn a_killed_holder_frees_its_semaphore_slot() {
    let _serial = SERIAL.lock().await;
    let test = "a_killed_holder_frees_its_semaphore_slot";
    let Some((store, addr)) = store("KV_ETCD35_ADDR", test, "lock_ttl=2s").await else {
        return;
    };
    let key = unique("killed-permit") + "pool";
    support::a_killed_holder_frees_its_permit(store, ("KV_CHILD_ETCD", &addr), &key).await;
}

#[tokio::test]
async fn auth_right_and_wrong_passwords() {
    auth_over(kvmesh::EtcdTransport::Http, "http").await;
}

#[cfg(feature = "grpc")]
#[tokio::test]
async fn auth_right_and_wrong_passwords_over_grpc() {
    auth_over(kvmesh::EtcdTransport::Grpc, "grpc").await;
}

/// Credentials over `transport` (`name` in the URL's `?transport=`).
async fn auth_over(transport: kvmesh::EtcdTransport, name: &str) {
    let test = "auth_right_and_wrong_passwords";
    let (Some(addr), Some(user), Some(password)) = (
        support::server_addr("KV_ETCD_AUTH_ADDR", test),
        support::server_addr("KV_ETCD_AUTH_USER", test),
        support::server_addr("KV_ETCD_AUTH_PASSWORD", test),
    ) else {
        return;
    };
    let key = unique(&format!("auth-{name}")) + "k";

    let anonymous = kvmesh::connect(&format!("etcd://{addr}?transport={name}"))
        .await
        .unwrap();
    assert!(matches!(
        anonymous.get(&key).await,
        Err(kvmesh::Error::PermissionDenied(_))
    ));

    let wrong_secret = "wrong-pw-91c2";
    let wrong_url = format!("etcd://{user}:{wrong_secret}@{addr}?transport={name}");
    // `connect` authenticates, so it is refused at once; a lazy store is
    // refused at its first call.
    let refused = kvmesh::connect(&wrong_url).await.unwrap_err();
    assert!(
        matches!(refused, kvmesh::Error::PermissionDenied(_)),
        "{refused:?}"
    );
    assert!(!format!("{refused} {refused:?}").contains(wrong_secret));
    let wrong = kvmesh::connect_lazy(&wrong_url).unwrap();
    let error = wrong.put(&key, Bytes::from("x")).await.unwrap_err();
    assert!(
        matches!(error, kvmesh::Error::PermissionDenied(_)),
        "{error:?}"
    );
    for shown in [
        format!("{error}"),
        format!("{error:?}"),
        format!("{wrong:?}"),
    ] {
        assert!(
            !shown.contains(wrong_secret),
            "the password leaked: {shown}"
        );
    }

    let config = kvmesh::Config::default()
        .with_credentials(user, password.clone())
        .with_etcd_transport(transport);
    let right = kvmesh::create_store(kvmesh::Backend::Etcd, &[&addr], config).unwrap();
    assert!(!format!("{right:?}").contains(&password));
    right.put(&key, Bytes::from("1")).await.unwrap();
    let mut watch = right.watch(&key, WatchOptions::default()).await.unwrap();
    assert!(matches!(next(&mut watch).await, KvEvent::Put(p) if p.value == "1"));
    // The test server's tokens live 2 s: calls and the watch go on after.
    tokio::time::sleep(Duration::from_secs(3)).await;
    right.put(&key, Bytes::from("2")).await.unwrap();
    assert_eq!(right.get(&key).await.unwrap().unwrap().value, "2");
    assert!(matches!(next(&mut watch).await, KvEvent::Put(p) if p.value == "2"));
    let lock = right
        .acquire(&(key.clone() + "-lock"), Bytes::from("me"))
        .await
        .unwrap();
    lock.release().await.unwrap();
    right.delete(&key).await.unwrap();
}

#[tokio::test]
async fn locks_leave_no_leases_behind() {
    let _serial = SERIAL.lock().await;
    let Some((store, addr)) = store(
        "KV_ETCD35_ADDR",
        "locks_leave_no_leases_behind",
        "lock_ttl=5s",
    )
    .await
    else {
        return;
    };
    let before = lease_ids(&addr).await;
    let key = unique("lock-leases") + "lock";
    for _ in 0..20 {
        let acquire = store.acquire(&key, Bytes::from("x"));
        let lock = tokio::time::timeout(Duration::from_secs(20), acquire)
            .await
            .expect("the lock frees up after the previous holder was dropped")
            .unwrap();
        // A waiter that gives up: its future is dropped mid-wait.
        let quitter = tokio::time::timeout(
            Duration::from_millis(50),
            store.acquire(&key, Bytes::from("y")),
        )
        .await;
        assert!(quitter.is_err(), "the lock is held");
        drop(lock);
    }
    // Drops revoke in the background: give them a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while lease_ids(&addr).await.difference(&before).next().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "lock leases left behind"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_dead_first_endpoint_fails_over() {
    let Some(addr) = support::server_addr("KV_ETCD35_ADDR", "a_dead_first_endpoint_fails_over")
    else {
        return;
    };
    let store = kvmesh::connect(&etcd_url(&format!("127.0.0.1:1,{addr}"), ""))
        .await
        .unwrap();
    let key = unique("failover") + "k";
    store.put(&key, Bytes::from("v")).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap().unwrap().value, "v");
    let mut watch = store.watch(&key, WatchOptions::default()).await.unwrap();
    assert!(matches!(next(&mut watch).await, KvEvent::Put(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_watches_on_ten_keys_share_a_few_connections() {
    let _serial = SERIAL.lock().await;
    let Some((store, addr)) = store(
        "KV_ETCD35_ADDR",
        "a_thousand_watches_on_ten_keys_share_a_few_connections",
        "",
    )
    .await
    else {
        return;
    };
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let prefix = unique("shared");
    support::shared_watches::thousand_watches_on_ten_keys(&store, &prefix).await;
    let connections = support::tcp_connections_to(port);
    eprintln!("1,000 etcd watches on 10 keys: {connections} connections");
    assert!(connections <= 20, "{connections} connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_watches_beyond_the_budget_share_their_directory() {
    let _serial = SERIAL.lock().await;
    let Some((store, addr)) = store(
        "KV_ETCD35_ADDR",
        "key_watches_beyond_the_budget_share_their_directory",
        "",
    )
    .await
    else {
        return;
    };
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let dir = unique("grouped");
    support::shared_watches::key_watches_in_one_directory(&store, &dir).await;
    let connections = support::tcp_connections_to(port);
    eprintln!("500 etcd key watches in one directory: {connections} connections");
    assert!(connections <= 40, "{connections} connections");
}

/// Two watches of `key`: one read as `puts` changes come, one left unread
/// until the end, which must still yield every change, once, in order.
async fn reader_and_idle_watch(store: &Arc<dyn Store>, key: &str, puts: usize) {
    let mut reader = store.watch(key, WatchOptions::default()).await.unwrap();
    let mut idle = store.watch(key, WatchOptions::default()).await.unwrap();
    let writer = {
        let store = store.clone();
        let key = key.to_owned();
        tokio::spawn(async move {
            for i in 0..puts {
                store.put(&key, Bytes::from(i.to_string())).await.unwrap();
            }
        })
    };
    for i in 0..puts {
        match next(&mut reader).await {
            KvEvent::Put(pair) => assert_eq!(pair.value, Bytes::from(i.to_string())),
            other => panic!("reader: {other:?}"),
        }
    }
    writer.await.unwrap();
    let mut last = 0;
    for i in 0..puts {
        match next(&mut idle).await {
            KvEvent::Put(pair) => {
                assert_eq!(
                    pair.value,
                    Bytes::from(i.to_string()),
                    "idle watch, put {i}"
                );
                assert!(pair.version > last);
                last = pair.version;
            }
            other => panic!("idle: {other:?}"),
        }
    }
    assert!(futures::FutureExt::now_or_never(idle.next()).is_none());
}

/// A watch that stops reading while another on the same key goes on falls
/// behind the shared stream's backlog (1,024 results of its own stream; 16
/// of its own key on a directory's stream), leaves it, and still delivers
/// every change, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_falls_behind_its_shared_stream_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let Some((store, _)) = store(
        "KV_ETCD35_ADDR",
        "a_watch_that_falls_behind_its_shared_stream_loses_nothing",
        "",
    )
    .await
    else {
        return;
    };
    reader_and_idle_watch(&store, &unique("lagging"), 1_500).await;
    // 32 streams make the next key watches share their directory's.
    let dir = unique("lagging-dir");
    let mut fillers = Vec::new();
    for i in 0..32 {
        let key = format!("{dir}filler{i}");
        fillers.push(store.watch(&key, WatchOptions::default()).await.unwrap());
    }
    reader_and_idle_watch(&store, &format!("{dir}k"), 100).await;
}

/// Over one shared gRPC watch stream, a watch nobody reads holds back no
/// other: its queue fills, it is let go from the stream (to resume on its
/// own when read, losing nothing), and the others go on.
#[tokio::test]
async fn an_unread_watch_holds_back_no_other() {
    let _serial = SERIAL.lock().await;
    let test = "an_unread_watch_holds_back_no_other";
    let Some((store, _addr)) = store("KV_ETCD35_ADDR", test, "").await else {
        return;
    };
    let prefix = unique("unread") + "slow/";
    // A watch of the prefix keeps its shared upstream ahead, so that a
    // watch `after` an older version needs an upstream watch of its own.
    let start = store.put(&format!("{prefix}k"), Bytes::from("0")).await;
    start.unwrap();
    let version = store
        .get(&format!("{prefix}k"))
        .await
        .unwrap()
        .unwrap()
        .version;
    let mut ahead = store
        .watch_range(&prefix, WatchOptions::default())
        .await
        .unwrap();
    next(&mut ahead).await;
    store
        .put(&format!("{prefix}k"), Bytes::from("1"))
        .await
        .unwrap();
    next(&mut ahead).await;
    let mut slow = store
        .watch_range(&prefix, WatchOptions::after(version))
        .await
        .unwrap();
    drop(ahead);
    // Far more changes than a watch's queue holds, none read.
    for i in 0..300 {
        store
            .put(&format!("{prefix}k"), Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    let other = unique("unread") + "other";
    let mut watch = store.watch(&other, WatchOptions::default()).await.unwrap();
    store.put(&other, Bytes::from("seen")).await.unwrap();
    match next(&mut watch).await {
        KvEvent::Put(pair) => assert_eq!(pair.value, "seen"),
        event => panic!("{event:?}"),
    }
    // The unread watch then delivers everything, in order, once.
    let mut last = String::new();
    while last != "299" {
        match next(&mut slow).await {
            KvEvent::Put(pair) => last = String::from_utf8(pair.value.to_vec()).unwrap(),
            event => panic!("{event:?}"),
        }
    }
}
