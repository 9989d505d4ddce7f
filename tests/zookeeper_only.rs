//! What only ZooKeeper has: keys at the paths ZooKeeper's own clients read
//! (kazoo, PyPI's ZooKeeper client, and `zkCli.sh`), and back; digest
//! identities; a watch that goes on through an expired session; 1,000
//! watches on 10 keys over one connection (the server's own `cons` and
//! `wchs` say so); the ensemble's leader killed under a live watch and a
//! held lock. A binary of its own: it kills members of the shared ensemble.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use futures::StreamExt;
use kvmesh::{Bytes, Error, KvEvent, Store, WatchOptions};
use support::proxy::FaultProxy;

/// The tests on the ensemble take turns: one kills its leader.
static ENSEMBLE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn next(watch: &mut kvmesh::Watch) -> KvEvent {
    tokio::time::timeout(Duration::from_secs(30), watch.next())
        .await
        .expect("an event within 30 s")
        .expect("the watch goes on")
        .expect("no error")
}

/// Runs a Python script with kazoo on the path; its standard output.
fn kazoo(addr: &str, script: &str) -> String {
    let path = std::env::var("KV_KAZOO_PATH").expect("KV_KAZOO_PATH (scripts/servers env)");
    let program = format!(
        "from kazoo.client import KazooClient\n\
         zk = KazooClient(hosts={addr:?})\n\
         zk.start(timeout=10)\n\
         {script}\n\
         zk.stop()\n"
    );
    let output = std::process::Command::new("python3")
        .args(["-c", &program])
        .env("PYTHONPATH", path)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "kazoo failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A ZooKeeper four-letter command's answer.
fn four_letters(addr: &str, command: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.write_all(command.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_where_zookeepers_own_clients_read_them() {
    let Some(addr) = support::server_addr("KV_ZOOKEEPER_ADDR", "zookeeper interop") else {
        return;
    };
    let root = format!("/kvmesh-interop/{}", std::process::id());
    let store = kvmesh::connect(&format!("zk://{addr}{root}"))
        .await
        .unwrap();
    store
        .put("services/web/1", Bytes::from("10.0.0.1:80"))
        .await
        .unwrap();
    store.put("odd key/100%", Bytes::from("x")).await.unwrap();
    // kvmesh writes, kazoo reads: the value, byte for byte, at the path.
    let read = kazoo(
        &addr,
        &format!(
            "print(zk.get({:?})[0].decode())\nprint(zk.get({:?})[0].decode())\nprint(zk.get({:?})[0])",
            format!("{root}/services/web/1"),
            format!("{root}/odd key/100%25"),
            format!("{root}/services"),
        ),
    );
    assert_eq!(read, "10.0.0.1:80\nx\nb'kvmesh:parent\\x00'");
    // kazoo writes (making the parents it needs), kvmesh reads.
    kazoo(
        &addr,
        &format!(
            "zk.create({:?}, b'from kazoo', makepath=True)",
            format!("{root}/made/by/kazoo")
        ),
    );
    let pair = store
        .get("made/by/kazoo")
        .await
        .unwrap()
        .expect("kazoo's node");
    assert_eq!(pair.value, "from kazoo");
    // ZooKeeper's own command line reads it too.
    let cli = std::env::var("KV_ZKCLI_BIN").expect("KV_ZKCLI_BIN");
    let output = std::process::Command::new(cli)
        .args(["-server", &addr, "get", &format!("{root}/services/web/1")])
        .output()
        .expect("zkCli.sh runs");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.lines().any(|line| line == "10.0.0.1:80"),
        "zkCli.sh printed {printed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_identity_keeps_its_keys() {
    let Some(addr) = support::server_addr("KV_ZOOKEEPER_ADDR", "zookeeper digest") else {
        return;
    };
    let root = format!("/kvmesh-digest-{}", std::process::id());
    let owner = kvmesh::connect(&format!("zk://app:right-pw@{addr}{root}"))
        .await
        .unwrap();
    owner.put("secret", Bytes::from("s")).await.unwrap();
    assert_eq!(owner.get("secret").await.unwrap().unwrap().value, "s");
    let wrong = kvmesh::connect(&format!("zk://app:wrong-pw@{addr}{root}"))
        .await
        .unwrap();
    assert!(matches!(
        wrong.get("secret").await,
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        wrong.put("secret", Bytes::from("x")).await,
        Err(Error::PermissionDenied(_))
    ));
    let anonymous = kvmesh::connect(&format!("zk://{addr}{root}"))
        .await
        .unwrap();
    assert!(matches!(
        anonymous.get("secret").await,
        Err(Error::PermissionDenied(_))
    ));
    // The password is in no error, no Debug.
    let error = wrong.get("secret").await.unwrap_err().to_string();
    assert!(
        !error.contains("wrong-pw") && !format!("{wrong:?}").contains("wrong-pw"),
        "{error}"
    );
    assert!(!format!("{owner:?}").contains("right-pw"));
}

/// A watch whose session the server expired (cut off past the session
/// timeout) goes on, on a new session, and delivers what changed meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_goes_on_through_an_expired_session() {
    let Some(addr) = support::server_addr("KV_ZOOKEEPER_ADDR", "zookeeper expired watch") else {
        return;
    };
    let proxy = FaultProxy::start(&addr).await;
    let root = support::unique("expired-watch");
    let watched = kvmesh::connect(&format!("zk://{}?lock_ttl=2s&timeout=5s", proxy.addr))
        .await
        .unwrap();
    let writer = kvmesh::connect(&format!("zk://{addr}")).await.unwrap();
    let key = format!("{root}k");
    writer.put(&key, Bytes::from("1")).await.unwrap();
    let mut watch = watched
        .watch_range(&root, WatchOptions::default())
        .await
        .unwrap();
    assert_eq!(next(&mut watch).await.key(), key);
    let lock_key = support::unique("expired-watch-lock");
    let lock = watched.acquire(&lock_key, Bytes::from("me")).await.unwrap();
    proxy.partition();
    writer.put(&key, Bytes::from("2")).await.unwrap();
    writer
        .put(&format!("{root}new"), Bytes::from("n"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), lock.lost())
        .await
        .expect("the cut-off holder learns it lost the lock");
    // Past the session timeout: the server expires the session.
    tokio::time::sleep(Duration::from_secs(4)).await;
    proxy.heal();
    let mut seen = vec![next(&mut watch).await, next(&mut watch).await];
    seen.sort_by(|a, b| a.key().cmp(b.key()));
    assert!(
        matches!(&seen[0], KvEvent::Put(p) if p.value == "2"),
        "{seen:?}"
    );
    assert_eq!(seen[1].key(), format!("{root}new"));
    // Still live on the new session.
    writer.put(&key, Bytes::from("3")).await.unwrap();
    assert!(matches!(next(&mut watch).await, KvEvent::Put(p) if p.value == "3"));
}

/// 1,000 watches on 10 keys: one connection, 10 ZooKeeper watches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_watches_share_one_connection() {
    let Some(addr) = support::server_addr("KV_ZOOKEEPER_ADDR", "zookeeper 1000 watches") else {
        return;
    };
    let root = format!("/kvmesh-scale-{}", std::process::id());
    let store = kvmesh::connect(&format!("zk://{addr}{root}"))
        .await
        .unwrap();
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    for key in &keys {
        store.put(key, Bytes::from("0")).await.unwrap();
    }
    let before = four_letters(&addr, "wchs");
    let mut watches = Vec::new();
    for i in 0..1000 {
        let mut watch = store
            .watch(&keys[i % 10], WatchOptions::default())
            .await
            .unwrap();
        next(&mut watch).await;
        watches.push(watch);
    }
    store.put("k3", Bytes::from("1")).await.unwrap();
    for watch in watches.iter_mut().skip(3).step_by(10) {
        assert!(matches!(next(watch).await, KvEvent::Put(p) if p.value == "1"));
    }
    let connections = four_letters(&addr, "cons");
    let ours = connections
        .lines()
        .filter(|l| l.contains("/127.0.0.1:"))
        .count();
    let after = four_letters(&addr, "wchs");
    eprintln!(
        "1,000 watches on 10 keys: server before: {before:?}; after: {after:?}; connections listed: {ours}"
    );
    let watches_on_server = |text: &str| -> usize {
        text.split_whitespace()
            .zip(text.split_whitespace().skip(1))
            .find(|(_, word)| word.starts_with("watches"))
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(
        watches_on_server(&after) <= watches_on_server(&before) + 10,
        "at most one server watch per key: {before} -> {after}"
    );
}

/// The ensemble's leader killed under a live watch and a held lock: the
/// watch delivers the final state of writes made through the election, and
/// the lock never has two holders (another takes it only once the holder
/// knows it lost it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_under_a_watch_and_a_lock() {
    let Some(cluster) = support::server_addr("KV_ZOOKEEPER_CLUSTER", "zookeeper leader kill")
    else {
        return;
    };
    let _turn = ENSEMBLE.lock().await;
    let url = format!("zk://{cluster}?lock_ttl=4s&timeout=10s");
    let store = kvmesh::connect(&url).await.unwrap();
    let other = kvmesh::connect(&url).await.unwrap();
    let root = support::unique("leader-kill");
    let key = format!("{root}k");
    let lock_key = support::unique("leader-kill-lock");
    store.put(&key, Bytes::from("start")).await.unwrap();
    let mut watch = store
        .watch_range(&root, WatchOptions::default())
        .await
        .unwrap();
    next(&mut watch).await;
    let lock = store
        .acquire(&lock_key, Bytes::from("holder"))
        .await
        .unwrap();
    let leader = support::servers(&["leader", "zookeeper-cluster"]);
    support::servers(&["kill", &leader]);
    // Back whatever happens below: the other tests need the whole ensemble.
    struct Revive(String);
    impl Drop for Revive {
        fn drop(&mut self) {
            support::servers(&["revive", &self.0]);
        }
    }
    let _revive = Revive(leader.clone());
    for i in 0..20 {
        support::put_until_done(&*other, &key, &i.to_string(), Duration::from_secs(30)).await;
    }
    // The watch reaches the final state.
    loop {
        if let KvEvent::Put(pair) = next(&mut watch).await
            && pair.value == "19"
        {
            break;
        }
    }
    // Never two holders.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        match other.try_acquire(&lock_key, Bytes::from("other")).await {
            Ok(Some(taken)) => {
                assert!(
                    lock.is_lost(),
                    "two holders: taken while the holder holds it"
                );
                taken.release().await.unwrap();
                break;
            }
            Ok(None) => {}
            Err(error) => assert!(error.is_retryable(), "{error}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads sync first by default (`?reads=fresh`) and not with
/// `?reads=local`; both read what was written, on the ensemble, whichever
/// server each store's session is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_and_local_reads_read_back() {
    let test = "zookeeper fresh_and_local_reads_read_back";
    let Some(addrs) = support::server_addr("KV_ZOOKEEPER_CLUSTER", test) else {
        return;
    };
    let _turn = ENSEMBLE.lock().await;
    let dir = support::unique("reads");
    let writer = kvmesh::connect(&format!("zk://{addrs}")).await.unwrap();
    for reads in ["fresh", "local"] {
        let reader = kvmesh::connect(&format!("zk://{addrs}?reads={reads}"))
            .await
            .unwrap();
        for i in 0..20 {
            let key = format!("{dir}{reads}/{i}");
            writer.put(&key, Bytes::from(i.to_string())).await.unwrap();
            if reads == "fresh" {
                // Another session's write that ended before the read began.
                let pair = reader
                    .get(&key)
                    .await
                    .unwrap()
                    .expect("a fresh read sees it");
                assert_eq!(pair.value, i.to_string());
            }
        }
        let prefix = format!("{dir}{reads}/");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while reader.get_range(&prefix).await.unwrap().len() < 20 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{reads}: not all 20 keys read"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let lock = writer
            .acquire(&format!("{prefix}lock"), Bytes::from("me"))
            .await
            .unwrap();
        let holder = reader.lock_holder(&format!("{prefix}lock")).await.unwrap();
        if reads == "fresh" {
            assert_eq!(holder.expect("the holder").value, "me");
        }
        lock.release().await.unwrap();
    }
}
