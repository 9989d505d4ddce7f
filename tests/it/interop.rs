//! Locks that the servers' own tools respect, both ways: while the tool
//! holds, kvmesh's `try_acquire` gets `None`; while kvmesh holds, the tool
//! waits, and proceeds once kvmesh releases.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kvmesh::Bytes;
use support::{server_addr, unique};

/// Lines of `child`'s stdout, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next line within `timeout`, if any.
async fn next_line(lines: &mpsc::Receiver<String>, timeout: Duration) -> Option<String> {
    tokio::task::block_in_place(|| lines.recv_timeout(timeout).ok())
}

/// Ends `child` as Ctrl-C would (it releases what it holds), then reaps it.
fn interrupt(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Kills `child` if a failed assertion leaves it running.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn etcdctl(addr: &str, args: &[&str]) -> Option<Child> {
    let binary = server_addr("KV_ETCDCTL_BIN", "etcdctl interop")?;
    let child = Command::new(binary)
        .arg(format!("--endpoints=http://{addr}"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run etcdctl");
    Some(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_lock_and_kvmesh_exclude_each_other() {
    let test = "etcdctl_lock_and_kvmesh_exclude_each_other";
    let Some(addr) = server_addr("KV_ETCD35_ADDR", test) else {
        return;
    };
    let store = kvmesh::connect(&format!("etcd://{addr}?lock_ttl=5s"))
        .await
        .unwrap();
    let key = unique(test) + "job";
    let name = format!("{key}___lock");

    // The tool holds: kvmesh cannot take the lock, then can once it is gone.
    let Some(child) = etcdctl(&addr, &["lock", &name]) else {
        return;
    };
    let mut tool = Reaped(child);
    let lines = lines_of(&mut tool.0);
    let held = next_line(&lines, Duration::from_secs(20))
        .await
        .expect("etcdctl holds");
    assert!(
        held.starts_with(&name),
        "etcdctl prints its lock key: {held}"
    );
    let refused = store
        .try_acquire(&key, Bytes::from("kvmesh"))
        .await
        .unwrap();
    assert!(refused.is_none(), "etcdctl holds the lock");
    interrupt(&mut tool.0);
    let lock = tokio::time::timeout(
        Duration::from_secs(15),
        store.acquire(&key, Bytes::from("kvmesh")),
    )
    .await
    .expect("free once etcdctl lets go")
    .unwrap();

    // kvmesh holds: the tool waits, and runs its command after the release.
    let Some(child) = etcdctl(&addr, &["lock", &name, "echo", "GOT"]) else {
        return;
    };
    let mut tool = Reaped(child);
    let lines = lines_of(&mut tool.0);
    assert_eq!(
        next_line(&lines, Duration::from_secs(2)).await,
        None,
        "etcdctl waits while kvmesh holds"
    );
    lock.release().await.unwrap();
    let got = next_line(&lines, Duration::from_secs(15)).await;
    assert_eq!(
        got.as_deref(),
        Some("GOT"),
        "etcdctl proceeds after the release"
    );
    let _ = tool.0.wait();
}

fn consul_lock(addr: &str, args: &[&str]) -> Option<Child> {
    let binary = server_addr("KV_CONSUL_BIN", "consul lock interop")?;
    let child = Command::new(binary)
        .arg("lock")
        .arg(format!("-http-addr=http://{addr}"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run consul lock");
    Some(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_lock_and_kvmesh_exclude_each_other() {
    let test = "consul_lock_and_kvmesh_exclude_each_other";
    let Some(addr) = server_addr("KV_CONSUL_ADDR", test) else {
        return;
    };
    let store = kvmesh::connect(&format!("consul://{addr}?lock_ttl=5s"))
        .await
        .unwrap();
    let prefix = unique(test) + "job";
    // `consul lock PREFIX` holds `PREFIX/.lock`.
    let key = format!("{prefix}/.lock");

    // consul lock runs its child through `sh -c`, its words joined.
    let Some(child) = consul_lock(&addr, &[&prefix, "echo HELD; sleep 60"]) else {
        return;
    };
    let mut tool = Reaped(child);
    let lines = lines_of(&mut tool.0);
    let held = next_line(&lines, Duration::from_secs(20)).await;
    assert_eq!(
        held.as_deref(),
        Some("HELD"),
        "consul lock runs its command"
    );
    let refused = store
        .try_acquire(&key, Bytes::from("kvmesh"))
        .await
        .unwrap();
    assert!(refused.is_none(), "consul lock holds the lock");
    interrupt(&mut tool.0);
    let lock = tokio::time::timeout(
        Duration::from_secs(20),
        store.acquire(&key, Bytes::from("kvmesh")),
    )
    .await
    .expect("free once consul lock lets go")
    .unwrap();

    let Some(child) = consul_lock(&addr, &[&prefix, "echo", "GOT"]) else {
        return;
    };
    let mut tool = Reaped(child);
    let lines = lines_of(&mut tool.0);
    assert_eq!(
        next_line(&lines, Duration::from_secs(2)).await,
        None,
        "consul lock waits while kvmesh holds"
    );
    lock.release().await.unwrap();
    let got = next_line(&lines, Duration::from_secs(20)).await;
    assert_eq!(
        got.as_deref(),
        Some("GOT"),
        "consul lock proceeds after the release"
    );
    let _ = tool.0.wait();
}

/// The etcd lock's layout, as documented: the contender key under
/// `<key>___lock/` and the value at `<key>`, both visible in listings and
/// both gone with the release.
#[tokio::test]
async fn etcd_lock_keys_are_ordinary_keys() {
    let test = "etcd_lock_keys_are_ordinary_keys";
    let Some(addr) = server_addr("KV_ETCD35_ADDR", test) else {
        return;
    };
    let store = kvmesh::connect(&format!("etcd://{addr}")).await.unwrap();
    let dir = unique(test);
    let key = format!("{dir}job");
    let lock = store.acquire(&key, Bytes::from("me")).await.unwrap();
    let keys: Vec<String> = store
        .get_range(&dir)
        .await
        .unwrap()
        .into_iter()
        .map(|pair| pair.key)
        .collect();
    let lease: i64 = lock.session().parse().unwrap();
    assert_eq!(keys, [key.clone(), format!("{key}___lock/{lease:x}")]);
    let contender = store.get(&keys[1]).await.unwrap().unwrap();
    assert_eq!(contender.value, "me", "the contender key names its holder");
    lock.release().await.unwrap();
    assert!(store.get_range(&dir).await.unwrap().is_empty());
}

/// An etcd election is etcd's own `concurrency.Election` on
/// `<root><name>___lock/`: `etcdctl elect` observes a kvmesh leader, takes
/// part in the same election, and kvmesh sees it lead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_elect_and_kvmesh_share_an_election() {
    use futures::StreamExt;
    use kvmesh::election::Election;
    let test = "etcdctl_elect_and_kvmesh_share_an_election";
    let Some(addr) = server_addr("KV_ETCD35_ADDR", test) else {
        return;
    };
    let store = kvmesh::connect(&format!("etcd://{addr}?lock_ttl=5s"))
        .await
        .unwrap();
    let root = unique(test);
    let election = Election::with_root(store, root.clone());
    let name = format!("{root}boss___lock");
    let leadership = election
        .campaign("boss", Bytes::from("kvmesh"))
        .await
        .unwrap();
    let mut observer = election.observe("boss").await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), observer.next()).await;
    assert_eq!(
        first.unwrap().unwrap().unwrap(),
        Some(Bytes::from("kvmesh"))
    );

    let Some(child) = etcdctl(&addr, &["elect", "-l", &name]) else {
        return;
    };
    let mut listener = Reaped(child);
    let heard = lines_of(&mut listener.0);
    let wait = Duration::from_secs(15);
    let key_line = next_line(&heard, wait)
        .await
        .expect("etcdctl observes a leader");
    assert!(key_line.starts_with(&name), "{key_line}");
    assert_eq!(next_line(&heard, wait).await.as_deref(), Some("kvmesh"));

    let Some(child) = etcdctl(&addr, &["elect", &name, "tool"]) else {
        return;
    };
    let mut candidate = Reaped(child);
    let said = lines_of(&mut candidate.0);
    assert_eq!(
        next_line(&said, Duration::from_secs(2)).await,
        None,
        "etcdctl waits while kvmesh leads"
    );
    leadership.resign().await.unwrap();
    let elected = next_line(&said, wait).await.expect("etcdctl is elected");
    assert!(elected.starts_with(&name), "{elected}");
    assert_eq!(next_line(&said, wait).await.as_deref(), Some("tool"));
    assert_eq!(
        election.leader("boss").await.unwrap(),
        Some(Bytes::from("tool"))
    );
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let change = tokio::time::timeout_at(deadline, observer.next()).await;
        if change
            .expect("kvmesh observes etcdctl's term")
            .unwrap()
            .unwrap()
            == Some(Bytes::from("tool"))
        {
            break;
        }
    }
    interrupt(&mut candidate.0);
    let deadline = tokio::time::Instant::now() + wait;
    while election.leader("boss").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "etcdctl resigned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    interrupt(&mut listener.0);
}

/// A kvmesh semaphore on Consul is `api.Semaphore`: `consul lock -n=2`
/// and kvmesh share the same two permits, both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_lock_n_and_kvmesh_share_a_semaphore() {
    use kvmesh::semaphore::Semaphore;
    let test = "consul_lock_n_and_kvmesh_share_a_semaphore";
    let Some(addr) = server_addr("KV_CONSUL_ADDR", test) else {
        return;
    };
    let store = kvmesh::connect(&format!("consul://{addr}?lock_ttl=5s"))
        .await
        .unwrap();
    let prefix = unique(test) + "pool";
    let permits = Semaphore::new(store, &prefix, 2);
    let wait = Duration::from_secs(20);

    // Two tool holders fill it.
    let mut tools = Vec::new();
    for _ in 0..2 {
        let Some(child) = consul_lock(&addr, &["-n=2", &prefix, "echo HELD; sleep 60"]) else {
            return;
        };
        let mut tool = Reaped(child);
        let lines = lines_of(&mut tool.0);
        assert_eq!(next_line(&lines, wait).await.as_deref(), Some("HELD"));
        tools.push(tool);
    }
    assert_eq!(permits.holders().await.unwrap().len(), 2);
    assert!(
        permits
            .try_acquire(Bytes::from("kvmesh"))
            .await
            .unwrap()
            .is_none()
    );
    interrupt(&mut tools[0].0);
    let first = tokio::time::timeout(wait, permits.acquire(Bytes::from("kvmesh-1")))
        .await
        .expect("a permit once one tool lets go")
        .unwrap();
    interrupt(&mut tools[1].0);
    let second = tokio::time::timeout(wait, permits.acquire(Bytes::from("kvmesh-2")))
        .await
        .expect("the other permit")
        .unwrap();
    let mut holders = permits.holders().await.unwrap();
    holders.sort();
    assert_eq!(holders, [Bytes::from("kvmesh-1"), Bytes::from("kvmesh-2")]);

    // kvmesh fills it: the tool waits, and runs once a permit is released.
    let Some(child) = consul_lock(&addr, &["-n=2", &prefix, "echo GOT"]) else {
        return;
    };
    let mut tool = Reaped(child);
    let lines = lines_of(&mut tool.0);
    assert_eq!(
        next_line(&lines, Duration::from_secs(2)).await,
        None,
        "consul lock -n=2 waits while kvmesh holds both"
    );
    first.release().await.unwrap();
    assert_eq!(next_line(&lines, wait).await.as_deref(), Some("GOT"));
    let _ = tool.0.wait();
    second.release().await.unwrap();
}
