//! A Consul agent killed (`kill -9`) under a live key watch and a live range
//! watch, then started again empty (a `-dev` agent keeps nothing: its index
//! starts low again, as after a restore from an older snapshot). The first
//! write after it is back reaches both watches within 2 s, with the store's
//! default settings: a blocking query on the old, higher index would sleep
//! its whole wait (60 s).
//!
//! The agent is this test's own, on ports no other test uses (18950-18953,
//! 18960-18963).

use crate::support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kvmesh::{Bytes, KvEvent, Watch, WatchOptions};

const HTTP: u16 = 18950;

/// The agent, killed when dropped (a failing test leaves nothing running).
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_agent(binary: &str, data: &std::path::Path, http: u16) -> Agent {
    let child = Command::new(binary)
        .env("CHECKPOINT_DISABLE", "1")
        .args(["agent", "-dev", "-node", "kvmesh-comes-back-empty"])
        .args(["-bind", "127.0.0.1", "-client", "127.0.0.1"])
        .args(["-http-port", &http.to_string(), "-dns-port", "-1"])
        .args(["-grpc-port", "-1", "-server-port", &(http + 1).to_string()])
        .args(["-serf-lan-port", &(http + 2).to_string()])
        .args(["-serf-wan-port", &(http + 3).to_string()])
        .args(["-hcl", "ports { grpc_tls = -1 }"])
        .args(["-hcl", "disable_update_check = true"])
        .arg("-data-dir")
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the Consul agent");
    Agent(child)
}

/// Waits until the agent takes a write.
async fn until_ready(store: &dyn kvmesh::Store) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.put("ready", Bytes::from("1")).await.is_err() {
        assert!(Instant::now() < deadline, "the agent did not come up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The next put of `key` with `value` on `watch`, within `within`.
async fn sees(watch: &mut Watch, key: &str, value: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let event = tokio::time::timeout_at(deadline, watch.next())
            .await
            .unwrap_or_else(|_| panic!("{key}={value} not seen within {within:?}"));
        if let Some(Ok(KvEvent::Put(pair))) = event
            && pair.key == key
            && pair.value == value
        {
            return;
        }
    }
}

/// The agent comes back with its index far below where it was (200 writes
/// before the kill, a handful after).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_see_the_first_write_after_the_agent_comes_back_empty() {
    comes_back_empty(
        "watches_see_the_first_write_after_the_agent_comes_back_empty",
        200,
        1,
        HTTP,
    )
    .await;
}

/// The agent comes back with its index about where it was (a few keys, the
/// same writes before and after): the watched key comes back at the very
/// version it had, with another value. Three restarts in a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_see_a_write_at_the_old_index_after_the_agent_comes_back_empty() {
    let test = "watches_see_a_write_at_the_old_index_after_the_agent_comes_back_empty";
    comes_back_empty(test, 0, 3, HTTP + 10).await;
}

async fn comes_back_empty(test: &str, fillers: usize, restarts: usize, http: u16) {
    let Some(binary) = support::server_addr("KV_CONSUL_BIN", test) else {
        return;
    };
    let data =
        std::env::temp_dir().join(format!("kvmesh-consul-empty-{}-{http}", std::process::id()));
    let mut agent = start_agent(&binary, &data, http);
    let store = kvmesh::connect_lazy(&format!("consul://127.0.0.1:{http}")).unwrap();
    until_ready(&*store).await;
    for i in 0..fillers {
        store
            .put("filler", Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    store.put("app/key", Bytes::from("before")).await.unwrap();
    let mut key_watch = store
        .watch("app/key", WatchOptions::default())
        .await
        .unwrap();
    let mut range_watch = store
        .watch_range("app/", WatchOptions::default())
        .await
        .unwrap();
    sees(&mut key_watch, "app/key", "before", Duration::from_secs(5)).await;
    sees(
        &mut range_watch,
        "app/key",
        "before",
        Duration::from_secs(5),
    )
    .await;
    for restart in 0..restarts {
        // Let both blocking queries settle on the current index.
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(agent);
        let _ = std::fs::remove_dir_all(&data);
        agent = start_agent(&binary, &data, http);
        until_ready(&*store).await;
        let value = format!("after {restart}");
        store
            .put("app/key", Bytes::from(value.clone()))
            .await
            .unwrap();
        let written = Instant::now();
        sees(&mut key_watch, "app/key", &value, Duration::from_secs(2)).await;
        sees(&mut range_watch, "app/key", &value, Duration::from_secs(2)).await;
        eprintln!(
            "both watches saw the write {:?} after it",
            written.elapsed()
        );
    }
    drop(agent);
    let _ = std::fs::remove_dir_all(&data);
}
