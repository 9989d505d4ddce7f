//! Lock safety across processes: three processes take one lock 100 times
//! each on a real backend, one of them is killed (SIGKILL) mid-run, and every
//! holder logs `S <token> <pid>` when it gets the lock and `E <token> <pid>`
//! before it gives it back, appending to a shared key with CAS. The log must
//! show no two live holders at once and fencing tokens that only grow.

use crate::support;

use std::time::Duration;

use kvmesh::Bytes;

const ROUNDS: usize = 100;

/// Appends `line` to the log key with a CAS loop.
async fn append(store: &dyn kvmesh::Store, log: &str, line: &str) {
    loop {
        let current = store.get(log).await.unwrap();
        let (mut text, previous) = match current {
            Some(pair) => (
                String::from_utf8(pair.value.to_vec()).unwrap(),
                Some(pair.version),
            ),
            None => (String::new(), None),
        };
        text.push_str(line);
        text.push('\n');
        if store
            .atomic_put(log, Bytes::from(text), previous)
            .await
            .unwrap()
        {
            return;
        }
    }
}

/// Run as a child process by `safety`: takes the lock `ROUNDS` times.
#[tokio::test]
async fn lock_safety_child() {
    let (Ok(url), Ok(key)) = (
        std::env::var("KV_SAFETY_URL"),
        std::env::var("KV_SAFETY_KEY"),
    ) else {
        return; // not a child: nothing to do
    };
    let log = format!("{key}-log");
    let store = kvmesh::connect(&url).await.unwrap();
    let pid = std::process::id();
    println!("READY");
    for _ in 0..ROUNDS {
        let lock = store
            .acquire(&key, Bytes::from(pid.to_string()))
            .await
            .unwrap();
        let token = lock.fencing_token();
        append(&*store, &log, &format!("S {token} {pid}")).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
        append(&*store, &log, &format!("E {token} {pid}")).await;
        lock.release().await.unwrap();
    }
}

async fn safety(url: String, test: &str) {
    let key = format!(
        "kvtest/{test}/{}-{}/lock",
        std::process::id(),
        std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos()
    );
    let mut children: Vec<std::process::Child> = (0..3)
        .map(|_| {
            support::spawn_child_test(
                "lock_safety::lock_safety_child",
                &[("KV_SAFETY_URL", &url), ("KV_SAFETY_KEY", &key)],
            )
        })
        .collect();
    for child in &mut children {
        support::wait_for_line(child, "READY").await;
    }
    // Kill one at a moment that varies from run to run.
    let moment = 200 + (std::time::UNIX_EPOCH.elapsed().unwrap().subsec_nanos() % 600) as u64;
    tokio::time::sleep(Duration::from_millis(moment)).await;
    let mut victim = children.remove(1);
    let killed = victim.id();
    victim.kill().unwrap();
    victim.wait().unwrap();
    for mut child in children {
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "a surviving holder failed");
    }

    let store = kvmesh::connect(&url).await.unwrap();
    let log = store
        .get(&format!("{key}-log"))
        .await
        .unwrap()
        .expect("a log");
    let log = String::from_utf8(log.value.to_vec()).unwrap();
    let mut holder: Option<(u64, u32)> = None;
    let mut last_token = 0;
    let mut starts = 0;
    for line in log.lines() {
        let mut parts = line.split(' ');
        let (kind, token, pid) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let (token, pid): (u64, u32) = (token.parse().unwrap(), pid.parse().unwrap());
        match kind {
            "S" => {
                if let Some((_, open)) = holder {
                    assert_eq!(
                        open, killed,
                        "{pid} took the lock while {open} held it:\n{log}"
                    );
                }
                assert!(
                    token > last_token,
                    "fencing token {token} after {last_token}:\n{log}"
                );
                last_token = token;
                holder = Some((token, pid));
                starts += 1;
            }
            "E" => assert_eq!(
                holder.take(),
                Some((token, pid)),
                "an end without its start:\n{log}"
            ),
            other => panic!("unexpected log line {other:?}"),
        }
    }
    assert!(
        starts >= 2 * ROUNDS,
        "the two survivors finished: {starts} holds"
    );
    eprintln!(
        "{test}: {starts} holds, one holder killed after {moment} ms, no overlap, tokens only grew"
    );
}

#[tokio::test]
async fn consul_lock_is_safe_across_processes() {
    if let Some(addr) =
        support::server_addr("KV_CONSUL_ADDR", "consul_lock_is_safe_across_processes")
    {
        safety(format!("consul://{addr}?lock_ttl=2s"), "consul-safety").await;
    }
}

#[tokio::test]
async fn etcd_lock_is_safe_across_processes() {
    if let Some(addr) = support::server_addr("KV_ETCD35_ADDR", "etcd_lock_is_safe_across_processes")
    {
        safety(format!("etcd://{addr}?lock_ttl=2s"), "etcd-safety").await;
    }
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_lock_is_safe_across_processes() {
    if let Some(addr) = support::server_addr("KV_REDIS_ADDR", "redis_lock_is_safe_across_processes")
    {
        safety(format!("redis://{addr}?lock_ttl=2s"), "redis-safety").await;
    }
}

#[cfg(feature = "zookeeper")]
#[tokio::test]
async fn zookeeper_lock_is_safe_across_processes() {
    if let Some(addr) = support::server_addr(
        "KV_ZOOKEEPER_ADDR",
        "zookeeper_lock_is_safe_across_processes",
    ) {
        safety(format!("zk://{addr}?lock_ttl=2s"), "zookeeper-safety").await;
    }
}
