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

/// How long a tool may take to say it holds or has run.
const TOOL_WAIT: Duration = Duration::from_secs(20);

/// A running tool (`etcdctl`, `consul lock`) and its stdout, line by line;
/// killed if a failed assertion leaves it running.
struct Tool {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Tool {
    /// Runs the binary `$var` with `args`; `None` (skipped) without it.
    fn run(var: &str, args: &[&str]) -> Option<Tool> {
        let binary = server_addr(var, "the interop tests")?;
        let mut child = Command::new(binary)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run the tool");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Some(Tool { child, lines })
    }

    /// The next line within `timeout`, if any.
    fn line(&self, timeout: Duration) -> Option<String> {
        tokio::task::block_in_place(|| self.lines.recv_timeout(timeout).ok())
    }

    /// Asserts the next line (within [`TOOL_WAIT`]) starts with `start`.
    fn says(&self, start: &str, what: &str) {
        let line = self.line(TOOL_WAIT);
        assert!(
            line.as_deref().is_some_and(|l| l.starts_with(start)),
            "{what}: expected {start:?}, got {line:?}"
        );
    }

    /// Asserts the tool says nothing for two seconds: it waits.
    fn waits(&self, what: &str) {
        assert_eq!(self.line(Duration::from_secs(2)), None, "{what}");
    }

    /// Ends it as Ctrl-C would (it releases what it holds), then reaps it.
    fn interrupt(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn etcdctl(addr: &str, args: &[&str]) -> Option<Tool> {
    let endpoints = format!("--endpoints=http://{addr}");
    Tool::run("KV_ETCDCTL_BIN", &[&[endpoints.as_str()], args].concat())
}

/// `consul lock` runs its child through `sh -c`, its words joined.
fn consul_lock(addr: &str, args: &[&str]) -> Option<Tool> {
    let http = format!("-http-addr=http://{addr}");
    Tool::run("KV_CONSUL_BIN", &[&["lock", http.as_str()], args].concat())
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
    let Some(mut tool) = etcdctl(&addr, &["lock", &name]) else {
        return;
    };
    tool.says(&name, "etcdctl prints its lock key once it holds");
    let refused = store
        .try_acquire(&key, Bytes::from("kvmesh"))
        .await
        .unwrap();
    assert!(refused.is_none(), "etcdctl holds the lock");
    tool.interrupt();
    let lock = tokio::time::timeout(TOOL_WAIT, store.acquire(&key, Bytes::from("kvmesh")))
        .await
        .expect("free once etcdctl lets go")
        .unwrap();

    // kvmesh holds: the tool waits, and runs its command after the release.
    let Some(tool) = etcdctl(&addr, &["lock", &name, "echo", "GOT"]) else {
        return;
    };
    tool.waits("etcdctl waits while kvmesh holds");
    lock.release().await.unwrap();
    tool.says("GOT", "etcdctl proceeds after the release");
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

    let Some(mut tool) = consul_lock(&addr, &[&prefix, "echo HELD; sleep 60"]) else {
        return;
    };
    tool.says("HELD", "consul lock runs its command");
    let refused = store
        .try_acquire(&key, Bytes::from("kvmesh"))
        .await
        .unwrap();
    assert!(refused.is_none(), "consul lock holds the lock");
    tool.interrupt();
    let lock = tokio::time::timeout(TOOL_WAIT, store.acquire(&key, Bytes::from("kvmesh")))
        .await
        .expect("free once consul lock lets go")
        .unwrap();

    let Some(tool) = consul_lock(&addr, &[&prefix, "echo GOT"]) else {
        return;
    };
    tool.waits("consul lock waits while kvmesh holds");
    lock.release().await.unwrap();
    tool.says("GOT", "consul lock proceeds after the release");
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
    let first = tokio::time::timeout(TOOL_WAIT, observer.next()).await;
    assert_eq!(
        first.unwrap().unwrap().unwrap(),
        Some(Bytes::from("kvmesh"))
    );

    // etcdctl prints a leader as two lines: its campaign key, its value.
    let Some(mut listener) = etcdctl(&addr, &["elect", "-l", &name]) else {
        return;
    };
    listener.says(&name, "etcdctl observes the kvmesh leader's key");
    listener.says("kvmesh", "and its value");

    let Some(mut candidate) = etcdctl(&addr, &["elect", &name, "tool"]) else {
        return;
    };
    candidate.waits("etcdctl waits while kvmesh leads");
    leadership.resign().await.unwrap();
    candidate.says(&name, "etcdctl is elected");
    candidate.says("tool", "with its value");
    assert_eq!(
        election.leader("boss").await.unwrap(),
        Some(Bytes::from("tool"))
    );
    let deadline = tokio::time::Instant::now() + TOOL_WAIT;
    loop {
        let change = tokio::time::timeout_at(deadline, observer.next()).await;
        let leader = change
            .expect("kvmesh observes etcdctl's term")
            .unwrap()
            .unwrap();
        if leader == Some(Bytes::from("tool")) {
            break;
        }
    }
    candidate.interrupt();
    let deadline = tokio::time::Instant::now() + TOOL_WAIT;
    while election.leader("boss").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "etcdctl resigned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    listener.interrupt();
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

    // Two tool holders fill it.
    let mut tools = Vec::new();
    for _ in 0..2 {
        let Some(tool) = consul_lock(&addr, &["-n=2", &prefix, "echo HELD; sleep 60"]) else {
            return;
        };
        tool.says("HELD", "consul lock -n=2 holds a permit");
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
    let mut permits_taken = Vec::new();
    for (n, tool) in tools.iter_mut().enumerate() {
        tool.interrupt();
        let value = Bytes::from(format!("kvmesh-{n}"));
        let permit = tokio::time::timeout(TOOL_WAIT, permits.acquire(value))
            .await
            .expect("a permit once a tool lets go")
            .unwrap();
        permits_taken.push(permit);
    }
    let mut holders = permits.holders().await.unwrap();
    holders.sort();
    assert_eq!(holders, [Bytes::from("kvmesh-0"), Bytes::from("kvmesh-1")]);

    // kvmesh fills it: the tool waits, and runs once a permit is released.
    let Some(tool) = consul_lock(&addr, &["-n=2", &prefix, "echo GOT"]) else {
        return;
    };
    tool.waits("consul lock -n=2 waits while kvmesh holds both");
    for permit in permits_taken {
        permit.release().await.unwrap();
    }
    tool.says("GOT", "consul lock -n=2 proceeds after a release");
}
