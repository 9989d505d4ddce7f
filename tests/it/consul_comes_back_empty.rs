//! A Consul agent killed (`kill -9`) under a live key watch and a live range
//! watch, then started again empty (a `-dev` agent keeps nothing: its index
//! starts low again, as after a restore from an older snapshot). The first
//! write after it is back reaches both watches within 2 s, with the store's
//! default settings: a blocking query on the old, higher index would sleep
//! its whole wait (60 s).
//!
//! The agent is this test's own, on ports no other test uses.

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

fn start_agent(binary: &str, data: &std::path::Path) -> Agent {
    let child = Command::new(binary)
        .env("CHECKPOINT_DISABLE", "1")
        .args(["agent", "-dev", "-node", "kvmesh-comes-back-empty"])
        .args(["-bind", "127.0.0.1", "-client", "127.0.0.1"])
        .args(["-http-port", &HTTP.to_string(), "-dns-port", "-1"])
        .args(["-grpc-port", "-1", "-server-port", "18951"])
        .args(["-serf-lan-port", "18952", "-serf-wan-port", "18953"])
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_see_the_first_write_after_the_agent_comes_back_empty() {
    let test = "watches_see_the_first_write_after_the_agent_comes_back_empty";
    let Some(binary) = support::server_addr("KV_CONSUL_BIN", test) else {
        return;
    };
    let data = std::env::temp_dir().join(format!("kvmesh-consul-empty-{}", std::process::id()));
    let agent = start_agent(&binary, &data);
    let store = kvmesh::connect_lazy(&format!("consul://127.0.0.1:{HTTP}")).unwrap();
    until_ready(&*store).await;
    // An index well above where a new agent starts.
    for i in 0..200 {
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
    // Let both blocking queries settle on the current index.
    tokio::time::sleep(Duration::from_millis(500)).await;

    drop(agent);
    let _ = std::fs::remove_dir_all(&data);
    let agent = start_agent(&binary, &data);
    until_ready(&*store).await;
    store.put("app/key", Bytes::from("after")).await.unwrap();
    let written = Instant::now();
    sees(&mut key_watch, "app/key", "after", Duration::from_secs(2)).await;
    sees(&mut range_watch, "app/key", "after", Duration::from_secs(2)).await;
    eprintln!(
        "both watches saw the write {:?} after it",
        written.elapsed()
    );
    drop(agent);
    let _ = std::fs::remove_dir_all(&data);
}
