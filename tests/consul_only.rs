//! Consul-specific behaviour against the real agents `scripts/servers` starts:
//! failover, ACL tokens, server limits, the connection budget, session
//! hygiene and a lock whose holder process is killed.
//!
//! Cases that count server-side resources (connections, sessions) run one at
//! a time (`SERIAL`), since cargo runs this binary's tests in parallel.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use support::unique;

use futures::StreamExt;
use kvmesh::{Bytes, Error, KvEvent, PutOptions, Store, WatchOptions};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn store(test: &str, options: &str) -> Option<(Arc<dyn Store>, String)> {
    let addr = support::server_addr("KV_CONSUL_ADDR", test)?;
    let store = kvmesh::connect(&format!("consul://{addr}?{options}"))
        .await
        .unwrap();
    Some((store, addr))
}

#[tokio::test]
async fn a_dead_first_endpoint_fails_over() {
    let Some(addr) = support::server_addr("KV_CONSUL_ADDR", "a_dead_first_endpoint_fails_over")
    else {
        return;
    };
    // Port 1 on loopback refuses connections at once.
    let store = kvmesh::connect(&format!("consul://127.0.0.1:1,{addr}"))
        .await
        .unwrap();
    let key = unique("failover") + "k";
    store.put(&key, Bytes::from("v")).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap().unwrap().value, "v");

    // Every endpoint dead: a typed, prompt error.
    let dead = kvmesh::connect_lazy("consul://127.0.0.1:1,127.0.0.1:2?timeout=2s").unwrap();
    match dead.get("k").await {
        Err(e @ Error::Unreachable { .. }) => assert!(e.is_retryable()),
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn tokens_are_checked_and_never_shown() {
    let test = "tokens_are_checked_and_never_shown";
    let (Some(addr), Some(token)) = (
        support::server_addr("KV_CONSUL_ACL_ADDR", test),
        support::server_addr("KV_CONSUL_ACL_TOKEN", test),
    ) else {
        return;
    };
    let key = unique("acl") + "k";

    let anonymous = kvmesh::connect(&format!("consul://{addr}")).await.unwrap();
    assert!(matches!(
        anonymous.get(&key).await,
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        anonymous.put(&key, Bytes::from("x")).await,
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        anonymous.watch(&key, WatchOptions::default()).await,
        Err(Error::PermissionDenied(_))
    ));

    let wrong_secret = "not-the-token-5e7a";
    let wrong = kvmesh::connect(&format!("consul://{addr}?token={wrong_secret}"))
        .await
        .unwrap();
    let error = wrong.put(&key, Bytes::from("x")).await.unwrap_err();
    assert!(matches!(error, Error::PermissionDenied(_)), "{error:?}");
    for shown in [
        format!("{error}"),
        format!("{error:?}"),
        format!("{wrong:?}"),
    ] {
        assert!(!shown.contains(wrong_secret), "the token leaked: {shown}");
    }

    let right = kvmesh::create_store(
        kvmesh::Backend::Consul,
        &[&addr],
        kvmesh::Config::default().with_token(token.clone()),
    )
    .unwrap();
    right.put(&key, Bytes::from("allowed")).await.unwrap();
    assert_eq!(right.get(&key).await.unwrap().unwrap().value, "allowed");
    assert!(!format!("{right:?}").contains(&token));
    right.delete(&key).await.unwrap();
}

#[tokio::test]
async fn server_limits_are_typed_errors() {
    let Some((store, _)) = store("server_limits_are_typed_errors", "").await else {
        return;
    };
    let key = unique("limits") + "k";
    match store
        .put_with(
            &key,
            Bytes::from("x"),
            PutOptions::ttl(Duration::from_millis(500)),
        )
        .await
    {
        Err(Error::InvalidArgument(message)) => {
            assert!(message.contains("1s"), "names the minimum: {message}")
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    match store.put(&key, Bytes::from(vec![7u8; 600 * 1024])).await {
        Err(Error::ValueTooLarge {
            key: refused,
            size,
            limit,
        }) => {
            assert_eq!((size, limit), (600 * 1024, 512 * 1024));
            assert_eq!(refused, key);
        }
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    assert!(!store.exists(&key).await.unwrap());
}

#[tokio::test]
async fn a_thousand_watches_on_ten_keys_share_a_few_connections() {
    let _serial = SERIAL.lock().await;
    let Some((store, addr)) =
        store("a_thousand_watches_on_ten_keys_share_a_few_connections", "").await
    else {
        return;
    };
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let prefix = unique("shared");
    support::shared_watches::thousand_watches_on_ten_keys(&store, &prefix).await;
    let connections = support::tcp_connections_to(port);
    eprintln!("1,000 Consul watches on 10 keys: {connections} connections");
    assert!(connections <= 40, "{connections} connections");
}

/// The IDs of the live sessions named `name`.
async fn sessions_named(addr: &str, name: &str) -> BTreeSet<String> {
    let body = support::http_get(&format!("http://{addr}/v1/session/list")).await;
    let sessions: serde_json::Value = serde_json::from_slice(&body).unwrap();
    sessions
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Name"] == name)
        .map(|s| s["ID"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn ttl_puts_leave_no_orphaned_sessions() {
    let _serial = SERIAL.lock().await;
    let Some((store, addr)) = store("ttl_puts_leave_no_orphaned_sessions", "").await else {
        return;
    };
    let before = sessions_named(&addr, "kvmesh-ttl").await;
    let key = unique("sessions") + "k";
    for i in 0..100u64 {
        // Mostly the same TTL (renewed), sometimes another (replaced).
        let ttl = Duration::from_secs(if i % 10 == 0 { 30 } else { 20 });
        store
            .put_with(&key, Bytes::from(i.to_string()), PutOptions::ttl(ttl))
            .await
            .unwrap();
        // A replaced session hands the key over in one txn, with the value.
        let now = store.get(&key).await.unwrap().expect("the key");
        assert_eq!(now.value, i.to_string());
    }
    let during = sessions_named(&addr, "kvmesh-ttl").await;
    assert_eq!(
        during.difference(&before).count(),
        1,
        "one session holds the key"
    );
    store.put(&key, Bytes::from("permanent")).await.unwrap();
    assert_eq!(
        sessions_named(&addr, "kvmesh-ttl").await,
        before,
        "a plain put frees the session"
    );

    store
        .put_with(
            &key,
            Bytes::from("again"),
            PutOptions::ttl(Duration::from_secs(20)),
        )
        .await
        .unwrap();
    store.delete(&key).await.unwrap();
    assert_eq!(
        sessions_named(&addr, "kvmesh-ttl").await,
        before,
        "a delete frees the session"
    );
}

#[tokio::test]
async fn locks_leave_no_sessions_behind() {
    let _serial = SERIAL.lock().await;
    let Some((store, addr)) = store("locks_leave_no_sessions_behind", "lock_ttl=5s").await else {
        return;
    };
    let before = sessions_named(&addr, "kvmesh-lock").await;
    let key = unique("lock-sessions") + "lock";
    for _ in 0..20 {
        let acquire = store.acquire(&key, Bytes::from("x"));
        let lock = tokio::time::timeout(Duration::from_secs(20), acquire)
            .await
            .expect("the lock frees up after the previous holder was dropped")
            .unwrap();
        drop(lock);
        let quitter = tokio::time::timeout(
            Duration::from_millis(50),
            store.acquire(&key, Bytes::from("y")),
        )
        .await;
        if let Ok(lock) = quitter {
            lock.unwrap().release().await.unwrap();
        }
    }
    // Drops clean up in the background: give them a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sessions_named(&addr, "kvmesh-lock").await != before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "lock sessions left behind"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Run as a child process by `a_killed_holder_loses_the_lock_after_its_ttl`:
/// takes the lock, says so, and waits to be killed.
#[tokio::test]
async fn lock_holder_child() {
    let (Ok(addr), Ok(key)) = (
        std::env::var("KV_CHILD_CONSUL"),
        std::env::var("KV_CHILD_KEY"),
    ) else {
        return; // not a child: nothing to do
    };
    let store = kvmesh::connect(&format!("consul://{addr}?lock_ttl=2s"))
        .await
        .unwrap();
    support::hold_until_killed(store, &key).await;
}

/// A killed process's semaphore permit frees once its session expires.
#[tokio::test]
async fn a_killed_holder_frees_its_semaphore_permit() {
    let test = "a_killed_holder_frees_its_semaphore_permit";
    let Some((store, addr)) = store(test, "lock_ttl=2s").await else {
        return;
    };
    let key = unique("killed-permit") + "pool";
    support::a_killed_holder_frees_its_permit(store, ("KV_CHILD_CONSUL", &addr), &key).await;
}

#[tokio::test]
async fn a_killed_holder_loses_the_lock_after_its_ttl() {
    let Some((store, addr)) = store(
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
        &[("KV_CHILD_CONSUL", &addr), ("KV_CHILD_KEY", &key)],
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
    child.kill().unwrap(); // SIGKILL: no release, no session destroy
    child.wait().unwrap();
    let started = std::time::Instant::now();
    let lock = tokio::time::timeout(
        Duration::from_secs(15),
        store.acquire(&key, Bytes::from("parent")),
    )
    .await
    .expect("the lock frees up within 2×TTL plus margin")
    .unwrap();
    eprintln!(
        "the lock was free {:?} after the holder died (lock TTL 2s)",
        started.elapsed()
    );
    assert_eq!(store.get(&key).await.unwrap().unwrap().value, "parent");
    lock.release().await.unwrap();
}

/// Consul's blocking-query rules, checked where a real agent cannot be made
/// to misbehave on demand: when `X-Consul-Index` goes backwards the watch
/// delivers the new state and restarts with a non-blocking read.
#[tokio::test]
async fn an_index_that_goes_backwards_resets_the_watch() {
    use support::fake_http::{Answer, FakeServer};
    let entry = |value: &str, modify: u64| {
        use base64::Engine as _;
        let value = base64::engine::general_purpose::STANDARD.encode(value);
        format!(
            r#"[{{"Key":"k","Value":"{value}","ModifyIndex":{modify},"CreateIndex":1,"LockIndex":0,"Flags":0}}]"#
        )
    };
    let answer = |index: u64, body: String, delay_ms: u64| {
        Answer::new(200, body)
            .header("x-consul-index", index.to_string())
            .delay(Duration::from_millis(delay_ms))
    };
    let server = FakeServer::start(move |n, _line| match n {
        // The watch's own initial read, then the shared upstream's first read.
        0 | 1 => answer(100, entry("v1", 50), 0),
        // The blocking query returns a lower index: a snapshot restore.
        2 => answer(90, entry("v2", 60), 0),
        3 => answer(91, entry("v2", 60), 0),
        _ => answer(91, entry("v2", 60), 60_000),
    })
    .await;
    // Lazy: the fake answers by request number, from the watch's first.
    let store = kvmesh::connect_lazy(&format!("consul://{}", server.addr)).unwrap();
    let mut watch = store.watch("k", WatchOptions::default()).await.unwrap();
    let values: Vec<Bytes> = [watch.next().await, watch.next().await]
        .into_iter()
        .map(|event| match event {
            Some(Ok(KvEvent::Put(pair))) => pair.value,
            other => panic!("expected a Put, got {other:?}"),
        })
        .collect();
    assert_eq!(values, ["v1", "v2"]);
    // Wait for the request after the reset.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.request_lines().len() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no request after the reset"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lines = server.request_lines();
    assert!(
        lines[2].contains("index=100"),
        "blocks on the last index: {lines:?}"
    );
    assert!(
        !lines[3].contains("index="),
        "after the index went backwards, a non-blocking read: {lines:?}"
    );
    assert!(
        lines[4..].iter().all(|l| l.contains("index=91")),
        "then blocks on the new index: {lines:?}"
    );
}

/// A watch whose connections are cut while keys change resumes by itself
/// and delivers the final state (Consul coalesces: the latest state is the
/// contract), with nothing repeated.
#[tokio::test]
async fn a_watch_cut_off_resumes_with_the_final_state() {
    let Some(addr) = support::server_addr(
        "KV_CONSUL_ADDR",
        "a_watch_cut_off_resumes_with_the_final_state",
    ) else {
        return;
    };
    let proxy = support::proxy::FaultProxy::start(&addr).await;
    let watcher = kvmesh::connect(&format!("consul://{}?timeout=2s", proxy.addr))
        .await
        .unwrap();
    let store = kvmesh::connect(&format!("consul://{addr}")).await.unwrap();
    let dir = unique("cut-watch");
    store
        .put(&format!("{dir}a"), Bytes::from("1"))
        .await
        .unwrap();
    store
        .put(&format!("{dir}gone"), Bytes::from("1"))
        .await
        .unwrap();
    let mut watch = watcher
        .watch_range(&dir, WatchOptions::default())
        .await
        .unwrap();
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    proxy.cut();
    store
        .put(&format!("{dir}a"), Bytes::from("2"))
        .await
        .unwrap();
    store
        .put(&format!("{dir}a"), Bytes::from("3"))
        .await
        .unwrap();
    store.delete(&format!("{dir}gone")).await.unwrap();
    store
        .put(&format!("{dir}new"), Bytes::from("1"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();

    let mut state = std::collections::BTreeMap::new();
    let mut last_version = 0;
    let mut seen = std::collections::BTreeSet::new();
    let expected = std::collections::BTreeMap::from([
        (format!("{dir}a"), Bytes::from("3")),
        (format!("{dir}new"), Bytes::from("1")),
    ]);
    state.insert(format!("{dir}a"), Bytes::from("1"));
    state.insert(format!("{dir}gone"), Bytes::from("1"));
    while state != expected {
        let event = tokio::time::timeout(Duration::from_secs(30), watch.next())
            .await
            .expect("the watch resumes after the cut")
            .unwrap()
            .unwrap();
        // Versions never go back; a deletion may share its result's index.
        assert!(event.version() >= last_version, "out of order: {event:?}");
        assert!(
            seen.insert((event.key().to_owned(), event.version())),
            "repeated: {event:?}"
        );
        last_version = event.version();
        match event {
            KvEvent::Put(pair) => state.insert(pair.key, pair.value),
            KvEvent::Delete { key, .. } => state.remove(&key),
        };
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_watches_beyond_the_budget_share_their_directory() {
    let _serial = SERIAL.lock().await;
    let Some((store, addr)) =
        store("key_watches_beyond_the_budget_share_their_directory", "").await
    else {
        return;
    };
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let dir = unique("grouped");
    support::shared_watches::key_watches_in_one_directory(&store, &dir).await;
    let connections = support::tcp_connections_to(port);
    eprintln!("500 Consul key watches in one directory: {connections} connections");
    assert!(connections <= 40, "{connections} connections");
}

/// Consul keeps a dropped watch's blocking query (and its connection) open
/// until its wait ends. Churning watches must not pile those up past the
/// store's budget (64 in flight, 48 more abandoned), or Consul's 200-connection limit answers every new
/// connection with a 429; once the budget is spent, new watches still
/// deliver, later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_watches_do_not_pile_up_queries_at_consul() {
    let _serial = SERIAL.lock().await;
    let Some(addr) = support::server_addr(
        "KV_CONSUL_ADDR",
        "dropped_watches_do_not_pile_up_queries_at_consul",
    ) else {
        return;
    };
    let consul_port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = support::proxy::FaultProxy::start(&addr).await;
    let store = kvmesh::connect(&format!("consul://{}", proxy.addr))
        .await
        .unwrap();
    let prefix = unique("churn");
    let mut most = 0;
    for round in 0..4 {
        let mut watches = Vec::new();
        for i in 0..100 {
            let key = format!("{prefix}r{round}/d{i}/k");
            watches.push(store.watch(&key, WatchOptions::default()).await.unwrap());
        }
        // Let the upstreams reach their blocking queries, then drop them all.
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(watches);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let held = support::server_side_connections(consul_port, &proxy.upstream_ports());
        eprintln!("round {round}: Consul holds {held} connections of this store");
        most = most.max(held);
    }
    // 64 queries in flight, 48 abandoned ones beyond them, a few pooled.
    assert!(
        most <= 64 + 48 + 8,
        "Consul held {most} connections for one store's dropped watches"
    );
    // The budget is spent on abandoned queries: a new watch still works,
    // once their waits end.
    let key = format!("{prefix}after");
    let mut watch = store.watch(&key, WatchOptions::default()).await.unwrap();
    store.put(&key, Bytes::from("seen")).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(40), watch.next()).await {
        Ok(Some(Ok(KvEvent::Put(pair)))) => assert_eq!(pair.value, Bytes::from("seen")),
        other => panic!("a watch after the churn: {other:?}"),
    }
}
