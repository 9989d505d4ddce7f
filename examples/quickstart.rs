//! A tour of kvmesh on the embedded store: put/get, a range watch printing
//! events as they happen, a compare-and-swap update, and a lock.
//!
//! Run with `cargo run --example quickstart`. Point it at another backend with
//! `KV_URL=consul://127.0.0.1:8500 cargo run --example quickstart`, or keep
//! its data on disk with `KV_URL=file://./quickstart.redb` (a second run
//! then finds the first one's keys).

use std::time::Duration;

use futures::StreamExt;
use kvmesh::{Bytes, KvEvent, WatchOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("KV_URL").unwrap_or_else(|_| "memory://".to_owned());
    let store = kvmesh::connect(&url).await?;
    println!("connected to {url}");

    // 1. Put and get.
    store
        .put("cluster/config/replicas", Bytes::from("3"))
        .await?;
    let pair = store
        .get("cluster/config/replicas")
        .await?
        .ok_or("just written")?;
    println!(
        "get    {} = {} (version {})",
        pair.key,
        String::from_utf8_lossy(&pair.value),
        pair.version
    );

    // 2. A range watch, printing events as they happen in a task of its own.
    let mut nodes = store
        .watch_range("cluster/nodes/", WatchOptions::default())
        .await?;
    let printer = tokio::spawn(async move {
        while let Some(event) = nodes.next().await {
            match event {
                Ok(KvEvent::Put(pair)) => println!(
                    "watch  put    {} = {} (version {})",
                    pair.key,
                    String::from_utf8_lossy(&pair.value),
                    pair.version
                ),
                Ok(KvEvent::Delete { key, version }) => {
                    println!("watch  delete {key} (version {version})")
                }
                Err(e) => println!("watch  error: {e}"),
            }
        }
        println!("watch  ended");
    });
    for (name, addr) in [("a", "10.0.0.1:7000"), ("b", "10.0.0.2:7000")] {
        store
            .put(&format!("cluster/nodes/{name}"), Bytes::from(addr))
            .await?;
    }
    store.delete("cluster/nodes/a").await?;
    tokio::time::sleep(Duration::from_millis(50)).await; // let the watch print

    // 3. Compare-and-swap: only one of two writers holding the same version wins.
    let seen = store
        .get("cluster/config/replicas")
        .await?
        .ok_or("just written")?;
    let first = store
        .atomic_put(&seen.key, Bytes::from("5"), Some(seen.version))
        .await?;
    let second = store
        .atomic_put(&seen.key, Bytes::from("7"), Some(seen.version))
        .await?;
    println!("cas    replicas 3 -> 5: {first}; 3 -> 7 with the same version: {second}");

    // 4. A lock: held, refused to a second caller, released.
    let lock = store
        .acquire("cluster/leader", Bytes::from("node-b"))
        .await?;
    println!(
        "lock   held on {} (fencing token {})",
        lock.key(),
        lock.fencing_token()
    );
    let other = store
        .try_acquire("cluster/leader", Bytes::from("node-c"))
        .await?;
    println!("lock   second caller gets it: {}", other.is_some());
    lock.release().await?;
    println!("lock   released");

    // End the watch: its stream returns None and the printer task finishes.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let ended = store.cancel_watch_range("cluster/nodes/");
    printer.await?;
    println!("cancel ended {ended} watch(es)");
    Ok(())
}
