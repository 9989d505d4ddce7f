//! What only Redis has: the layout `redis-cli` reads, a watch through a
//! `kill -9` and restart of the server (AOF with appendfsync always), a watch
//! resumed after the change log was trimmed, TTL expiry logged after the
//! writer process died, ACL credentials, and large prefixes read in chunks.
//! A binary of its own: it restarts the shared server, so its tests also run
//! one at a time.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use futures::StreamExt;
use kvmesh::{Bytes, Error, KvEvent, PutOptions, Store, WatchOptions};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A namespace of its own for each test.
fn namespace(case: &str) -> String {
    support::unique(case)
        .replace('/', "-")
        .trim_end_matches('-')
        .to_owned()
}

fn redis_cli(addr: &str, args: &[&str]) -> String {
    let (host, port) = addr.split_once(':').unwrap();
    let cli = std::env::var("KV_REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".into());
    let output = std::process::Command::new(cli)
        .args(["-h", host, "-p", port, "--no-raw"])
        .args(args)
        .output()
        .expect("redis-cli runs");
    assert!(output.status.success(), "redis-cli {args:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn next(watch: &mut kvmesh::Watch) -> KvEvent {
    tokio::time::timeout(Duration::from_secs(20), watch.next())
        .await
        .expect("an event in time")
        .expect("the watch goes on")
        .expect("no error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_reads_the_documented_layout() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(addr) = support::server_addr("KV_REDIS_ADDR", "redis_cli_reads_the_documented_layout")
    else {
        return;
    };
    let ns = namespace("layout");
    let store = kvmesh::connect(&format!("redis://{addr}?namespace={ns}"))
        .await
        .unwrap();
    store
        .put("config/replicas", Bytes::from("3"))
        .await
        .unwrap();
    let version = store.get("config/replicas").await.unwrap().unwrap().version;
    let hash = format!("{{{ns}}}:k:config/replicas");
    assert_eq!(redis_cli(&addr, &["HGET", &hash, "value"]).trim(), "\"3\"");
    assert_eq!(
        redis_cli(&addr, &["HGET", &hash, "version"]).trim(),
        format!("\"{version}\"")
    );
    assert_eq!(
        redis_cli(&addr, &["GET", &format!("{{{ns}}}:rev")]).trim(),
        format!("\"{version}\"")
    );
    let index = redis_cli(&addr, &["ZRANGE", &format!("{{{ns}}}:index"), "0", "-1"]);
    assert!(index.contains("config/replicas"), "{index}");
    let log = redis_cli(&addr, &["XRANGE", &format!("{{{ns}}}:log"), "-", "+"]);
    assert!(
        log.contains(&format!("{version}-0")) && log.contains("put"),
        "{log}"
    );
    // And back: what redis-cli sees is what kvmesh wrote, nothing else in it.
    let keys = redis_cli(&addr, &["KEYS", &format!("{{{ns}}}:*")]);
    for key in keys.lines() {
        assert!(key.contains(&format!("{{{ns}}}:")), "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_loses_nothing_through_a_kill_9_and_restart() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let test = "a_watch_loses_nothing_through_a_kill_9_and_restart";
    let Some(addr) = support::server_addr("KV_REDIS_ADDR", test) else {
        return;
    };
    let ns = namespace("restart");
    let store = kvmesh::connect(&format!("redis://{addr}?namespace={ns}&timeout=2s"))
        .await
        .unwrap();
    let mut watch = store
        .watch_range("w/", WatchOptions::default())
        .await
        .unwrap();
    for i in 0..5 {
        store
            .put(&format!("w/{i}"), Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    support::servers(&["restart", "redis"]);
    let mut written = 5;
    while written < 10 {
        // The first writes after the restart may meet a reconnecting client.
        if store
            .put(&format!("w/{written}"), Bytes::from(written.to_string()))
            .await
            .is_ok()
        {
            written += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut last = 0;
    for i in 0..10 {
        match next(&mut watch).await {
            KvEvent::Put(pair) => {
                assert_eq!(
                    pair.key,
                    format!("w/{i}"),
                    "in order, none lost or repeated"
                );
                assert!(pair.version > last);
                last = pair.version;
            }
            other => panic!("{other:?}"),
        }
    }
    let more = tokio::time::timeout(Duration::from_millis(500), watch.next()).await;
    assert!(more.is_err(), "nothing repeated: {more:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumed_after_the_log_was_trimmed_yields_the_difference() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let test = "a_watch_resumed_after_the_log_was_trimmed";
    let Some(addr) = support::server_addr("KV_REDIS_ADDR", test) else {
        return;
    };
    let ns = namespace("trimmed");
    // A log of about 5 entries (Redis trims whole nodes of ~100).
    let store = kvmesh::connect(&format!("redis://{addr}?namespace={ns}&history=5"))
        .await
        .unwrap();
    store.put("t/kept", Bytes::from("old")).await.unwrap();
    store.put("t/gone", Bytes::from("x")).await.unwrap();
    let from = store.get("t/gone").await.unwrap().unwrap().version;
    store.delete("t/gone").await.unwrap();
    for i in 0..400 {
        store
            .put("other", Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    store.put("t/kept", Bytes::from("new")).await.unwrap();
    let first = redis_cli(
        &addr,
        &["XRANGE", &format!("{{{ns}}}:log"), "-", "+", "COUNT", "1"],
    );
    assert!(
        !first.contains(&format!("{}-0", from + 1)),
        "the log was trimmed: {first}"
    );
    let mut watch = store
        .watch_range("t/", WatchOptions::after(from))
        .await
        .unwrap();
    match next(&mut watch).await {
        KvEvent::Delete { key, .. } => assert_eq!(key, "t/gone"),
        other => panic!("{other:?}"),
    }
    match next(&mut watch).await {
        KvEvent::Put(pair) => assert_eq!(
            (pair.key.as_str(), &pair.value[..]),
            ("t/kept", &b"new"[..])
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_key_of_a_killed_writer_expires_with_a_delete_event() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let test = "a_ttl_key_of_a_killed_writer_expires_with_a_delete_event";
    let Some(addr) = support::server_addr("KV_REDIS_ADDR", test) else {
        return;
    };
    let ns = namespace("ttl-killed");
    let url = format!("redis://{addr}?namespace={ns}");
    let store = kvmesh::connect(&url).await.unwrap();
    let mut watch = store.watch("node", WatchOptions::default()).await.unwrap();
    let mut child = support::spawn_child_test("ttl_writer_child", &[("KV_CHILD_REDIS", &url)]);
    support::wait_for_line(&mut child, "WRITTEN").await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(matches!(next(&mut watch).await, KvEvent::Put(_)));
    match next(&mut watch).await {
        KvEvent::Delete { key, .. } => assert_eq!(key, "node"),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.get("node").await.unwrap(), None);
}

/// Run as a child by the test above: writes a key with a TTL, says so, and
/// waits to be killed.
#[tokio::test]
async fn ttl_writer_child() {
    let Ok(url) = std::env::var("KV_CHILD_REDIS") else {
        return; // not a child: nothing to do
    };
    let store = kvmesh::connect(&url).await.unwrap();
    let ttl = PutOptions::ttl(Duration::from_millis(700));
    store
        .put_with("node", Bytes::from("10.0.0.1"), ttl)
        .await
        .unwrap();
    println!("WRITTEN");
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_credentials_work_and_a_wrong_password_is_permission_denied() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let test = "acl_credentials";
    let (Some(addr), Some(user), Some(password)) = (
        support::server_addr("KV_REDIS_AUTH_ADDR", test),
        support::server_addr("KV_REDIS_AUTH_USER", test),
        support::server_addr("KV_REDIS_AUTH_PASSWORD", test),
    ) else {
        return;
    };
    let ns = namespace("acl");
    let store = kvmesh::connect(&format!("redis://{user}:{password}@{addr}?namespace={ns}"))
        .await
        .unwrap();
    store.put("k", Bytes::from("v")).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().unwrap().value, "v");
    let refused = kvmesh::connect(&format!("redis://{user}:not-{password}@{addr}")).await;
    match refused {
        Err(Error::PermissionDenied(message)) => {
            assert!(
                !message.contains(&password),
                "the password stays out: {message}"
            )
        }
        other => panic!("a wrong password: {:?}", other.map(|_| ())),
    }
    let store: std::sync::Arc<dyn Store> = store;
    let shown = format!("{store:?}");
    assert!(!shown.contains(&password), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_is_lost_when_its_key_is_written() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(addr) =
        support::server_addr("KV_REDIS_ADDR", "a_lock_is_lost_when_its_key_is_written")
    else {
        return;
    };
    let ns = namespace("lock-written");
    let url = format!("redis://{addr}?namespace={ns}&lock_ttl=3s");
    let store = kvmesh::connect(&url).await.unwrap();
    let other = kvmesh::connect(&url).await.unwrap();
    let lock = store.acquire("job", Bytes::from("me")).await.unwrap();
    other.put("job", Bytes::from("someone else")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), lock.lost())
        .await
        .expect("the holder learns at its next renewal (TTL/3)");
    assert!(matches!(lock.release().await, Err(Error::LockLost { .. })));
    let next = other.try_acquire("job", Bytes::from("next")).await.unwrap();
    assert!(next.is_some(), "free for the next holder");
}

/// A server whose `maxmemory-policy` may evict the store's keys is refused
/// at `connect`, naming the setting: an evicted index or log entry would
/// leave writes half-made.
#[tokio::test]
async fn a_server_that_may_evict_keys_is_refused_at_connect() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let test = "a_server_that_may_evict_keys_is_refused_at_connect";
    let Some(addr) = support::server_addr("KV_REDIS_ADDR", test) else {
        return;
    };
    /// Puts the shared server back to `noeviction`, also on a failure.
    struct Restore<'a>(&'a str);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            redis_cli(self.0, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
        }
    }
    let _restore = Restore(&addr);
    for policy in ["allkeys-lru", "volatile-ttl"] {
        redis_cli(&addr, &["CONFIG", "SET", "maxmemory-policy", policy]);
        match kvmesh::connect(&format!("redis://{addr}")).await {
            Err(Error::Unsupported { what, .. }) => {
                assert!(
                    what.contains("maxmemory-policy") && what.contains(policy),
                    "{what}"
                );
            }
            other => panic!("{policy}: {other:?}"),
        }
    }
    redis_cli(&addr, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    kvmesh::connect(&format!("redis://{addr}")).await.unwrap();
}

/// A watch nobody reads holds at most its channel's worth of changes: the
/// rest it reads from the change log when it is read again, in order,
/// nothing lost or repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_watch_stays_bounded_and_loses_nothing() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let test = "an_unread_watch_stays_bounded_and_loses_nothing";
    let Some(addr) = support::server_addr("KV_REDIS_ADDR", test) else {
        return;
    };
    let ns = namespace("unread");
    let store = kvmesh::connect(&format!("redis://{addr}?namespace={ns}&history=100000"))
        .await
        .unwrap();
    let mut watch = store
        .watch_range("w/", WatchOptions::default())
        .await
        .unwrap();
    const PUTS: usize = 3_000; // about three channels' worth
    let value = Bytes::from(vec![b'x'; 1024]);
    for chunk in (0..PUTS).collect::<Vec<_>>().chunks(50) {
        let puts = chunk.iter().map(|i| {
            let (store, value) = (store.clone(), value.clone());
            async move { store.put(&format!("w/{i:05}"), value).await }
        });
        futures::future::try_join_all(puts).await.unwrap();
    }
    let mut last = 0;
    for n in 0..PUTS {
        let event = next(&mut watch).await;
        assert!(event.version() > last, "event {n} out of order or repeated");
        last = event.version();
    }
    let quiet = tokio::time::timeout(Duration::from_millis(300), watch.next()).await;
    assert!(quiet.is_err(), "more events than writes: {quiet:?}");
}

/// Many keys whose TTL passes at once are all deleted (and their `Delete`s
/// logged) within about a second, not at 100 keys per sweep period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_ttl_keys_expiring_together_are_swept_at_once() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let test = "many_ttl_keys_expiring_together_are_swept_at_once";
    let Some(addr) = support::server_addr("KV_REDIS_ADDR", test) else {
        return;
    };
    let ns = namespace("sweep");
    let store = kvmesh::connect(&format!("redis://{addr}?namespace={ns}&history=100000"))
        .await
        .unwrap();
    const KEYS: usize = 2_000; // 20 sweep batches
    let ttl = PutOptions::ttl(Duration::from_millis(500));
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(100) {
        let puts = chunk.iter().map(|i| {
            let (store, ttl) = (store.clone(), ttl.clone());
            async move {
                store
                    .put_with(&format!("e/{i:05}"), Bytes::from("x"), ttl)
                    .await
            }
        });
        futures::future::try_join_all(puts).await.unwrap();
    }
    let mut watch = store
        .watch_range("e/", WatchOptions::default())
        .await
        .unwrap();
    let mut present = 0;
    while present < KEYS {
        match next(&mut watch).await {
            KvEvent::Put(_) => present += 1,
            KvEvent::Delete { .. } => break, // expiring already
        }
    }
    // Every key is gone from the log's point of view within a few seconds
    // (the sweep period is 250 ms; 20 periods would be 5 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut deleted = 0;
    while deleted < KEYS {
        let event = tokio::time::timeout_at(deadline, watch.next())
            .await
            .unwrap_or_else(|_| panic!("only {deleted} of {KEYS} deletions within the deadline"));
        if let Some(Ok(KvEvent::Delete { .. })) = event {
            deleted += 1;
        }
    }
}

/// `delete_range` of a prefix larger than one batch deletes all of it
/// (batch after batch, each a short script), and logs every delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_delete_range_goes_in_short_batches_and_deletes_all() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let test = "a_large_delete_range_goes_in_short_batches_and_deletes_all";
    let Some(addr) = support::server_addr("KV_REDIS_ADDR", test) else {
        return;
    };
    let ns = namespace("large-range");
    let store = kvmesh::connect(&format!("redis://{addr}?namespace={ns}&history=100000"))
        .await
        .unwrap();
    const KEYS: usize = 2_600; // five batches and a bit
    let mut txn = kvmesh::Txn::new();
    for i in 0..KEYS {
        txn = txn.put(&format!("r/{i:05}"), Bytes::from("x"));
    }
    store.txn(txn).await.unwrap();
    store.put("s/kept", Bytes::from("y")).await.unwrap();
    let mut watch = store
        .watch_range("r/", WatchOptions::after(0))
        .await
        .unwrap();
    store.delete_range("r/").await.unwrap();
    assert!(store.get_range("r/").await.unwrap().is_empty());
    assert_eq!(
        store.get_range("s/").await.unwrap().len(),
        1,
        "beside the prefix: kept"
    );
    let mut deletes = 0;
    while deletes < KEYS {
        if let KvEvent::Delete { .. } = next(&mut watch).await {
            deletes += 1;
        }
    }
}

/// A prefix larger than one read chunk, read while a writer changes its
/// first and last keys together (one txn each time: a token swapped between
/// two keys, and a key moved between two places): every `get_range` and
/// every watch's initial state is one moment (one token, one moved key,
/// every key once, in order), whether the log still reaches back over the
/// read (`history=100000`) or writes outrun it (`history=2`: the read starts
/// over, then reads the prefix whole).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_prefix_is_read_in_chunks_as_of_one_moment() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let test = "a_large_prefix_is_read_in_chunks_as_of_one_moment";
    let Some(addr) = support::server_addr("KV_REDIS_ADDR", test) else {
        return;
    };
    for history in [100_000, 2] {
        let ns = namespace(&format!("chunked-{history}"));
        let url = format!("redis://{addr}?namespace={ns}&history={history}");
        let store = kvmesh::connect(&url).await.unwrap();
        const KEYS: usize = 3_500; // four chunks, and the keys below
        for part in 0..4 {
            let mut txn = kvmesh::Txn::new();
            for i in (part * 1_000)..((part + 1) * 1_000).min(KEYS) {
                txn = txn.put(&format!("r/{:04}", i + 1), Bytes::from("x"));
            }
            store.txn(txn).await.unwrap();
        }
        let setup = kvmesh::Txn::new()
            .put("r/0000", Bytes::from("token"))
            .put("r/9999", Bytes::from("plain"))
            .put("r/0000m", Bytes::from("moved"));
        store.txn(setup).await.unwrap();
        let writer_store = kvmesh::connect(&url).await.unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer_stop = stop.clone();
        let writer = tokio::spawn(async move {
            let (mut token, mut plain) = ("r/0000", "r/9999");
            let (mut from, mut to) = ("r/0000m", "r/9999m");
            let mut writes = 0u64;
            while !writer_stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::mem::swap(&mut token, &mut plain);
                let swap = kvmesh::Txn::new()
                    .put(token, Bytes::from("token"))
                    .put(plain, Bytes::from("plain"));
                writer_store.txn(swap).await.unwrap();
                let r#move = kvmesh::Txn::new()
                    .delete(from)
                    .put(to, Bytes::from("moved"));
                writer_store.txn(r#move).await.unwrap();
                std::mem::swap(&mut from, &mut to);
                writes += 1;
            }
            writes
        });
        let count = |pairs: &[kvmesh::KvPair], value: &str| {
            pairs.iter().filter(|p| p.value == value).count()
        };
        let in_order = |pairs: &[kvmesh::KvPair]| pairs.windows(2).all(|w| w[0].key < w[1].key);
        for _ in 0..30 {
            let pairs = store.get_range("r/").await.unwrap();
            assert_eq!(count(&pairs, "token"), 1, "get_range (history {history})");
            assert_eq!(count(&pairs, "moved"), 1, "get_range (history {history})");
            assert_eq!(pairs.len(), KEYS + 3, "get_range (history {history})");
            assert!(in_order(&pairs), "get_range: in order, each key once");
            // The initial state: the Puts before the first live change (a
            // swap repeats a key; a move starts with its Delete, or, from a
            // re-read, with a second moved key).
            let mut watch = store
                .watch_range("r/", WatchOptions::default())
                .await
                .unwrap();
            let mut pairs: Vec<kvmesh::KvPair> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            while let KvEvent::Put(pair) = next(&mut watch).await {
                let second_move = pair.value == "moved" && count(&pairs, "moved") == 1;
                if !seen.insert(pair.key.clone()) || second_move {
                    break;
                }
                pairs.push(pair);
            }
            assert_eq!(
                count(&pairs, "moved"),
                1,
                "initial state (history {history})"
            );
            assert_eq!(
                count(&pairs, "token"),
                1,
                "initial state (history {history})"
            );
            assert!(in_order(&pairs), "initial state: in order, each key once");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let writes = writer.await.unwrap();
        assert!(
            writes > 30,
            "the writer ran during the reads ({writes} rounds)"
        );
        store.delete_range("r/").await.unwrap();
    }
}

/// A Redis server of the test's own, without persistence: killed and
/// started again, it comes back empty.
struct Ephemeral {
    binary: String,
    port: u16,
    child: Option<std::process::Child>,
}

impl Ephemeral {
    fn start(binary: &str, port: u16) -> Ephemeral {
        let mut server = Ephemeral {
            binary: binary.to_owned(),
            port,
            child: None,
        };
        server.restart();
        server
    }

    fn restart(&mut self) {
        self.kill();
        let child = std::process::Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL: nothing is saved
            let _ = child.wait();
        }
    }
}

impl Drop for Ephemeral {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A server that restarts without its data takes the version counter
/// back. The store notices (the epoch mark is gone), raises the counter past
/// every version it saw before anything is written, and every watch yields
/// the difference: the lost keys' deletions, then the new write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_that_loses_the_data_resyncs_watches_and_repeats_no_version() {
    let test = "a_restart_that_loses_the_data_resyncs_watches_and_repeats_no_version";
    let Some(binary) = support::server_addr("KV_REDIS_SERVER_BIN", test) else {
        return;
    };
    let port = 16_391;
    let mut server = Ephemeral::start(&binary, port);
    let store = kvmesh::connect(&format!("redis://127.0.0.1:{port}?timeout=2s"))
        .await
        .unwrap();
    for i in 0..20 {
        store.put("w/a", Bytes::from(i.to_string())).await.unwrap();
    }
    store.put("w/b", Bytes::from("b")).await.unwrap();
    let before = store.get("w/b").await.unwrap().unwrap().version;
    let mut watch = store
        .watch_range("w/", WatchOptions::default())
        .await
        .unwrap();
    for _ in 0..2 {
        next(&mut watch).await; // the initial state
    }

    server.restart(); // empty now
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while let Err(error) = store.put("w/c", Bytes::from("c")).await {
        assert!(std::time::Instant::now() < deadline, "{error}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = store.get("w/c").await.unwrap().unwrap().version;
    assert!(
        c > before,
        "version {c} handed out again (the store had seen {before})"
    );
    assert!(
        !store
            .atomic_put("w/b", Bytes::from("stale"), Some(before))
            .await
            .unwrap(),
        "a CAS on a version from before the loss"
    );
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 3 {
        let label = match next(&mut watch).await {
            KvEvent::Put(pair) => format!("put {}", pair.key),
            KvEvent::Delete { key, .. } => format!("delete {key}"),
        };
        seen.insert(label);
    }
    let expected = ["delete w/a", "delete w/b", "put w/c"].map(String::from);
    assert_eq!(seen, std::collections::BTreeSet::from(expected));
}
