//! A local copy of a prefix (`kvmesh::cache::Cache`): feature flags read
//! from memory with no request, kept current by one watch, with every change
//! reported beside the value it replaced.
//!
//! Run with `cargo run --example cache`; point it at a server with
//! `KV_URL=etcd://127.0.0.1:2379 cargo run --example cache`.

use futures::StreamExt;
use kvmesh::Bytes;
use kvmesh::cache::{Cache, CacheEvent};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("KV_URL").unwrap_or_else(|_| "memory://".to_owned());
    let store = kvmesh::connect(&url).await?;
    let prefix = "example/flags/";
    store.delete_range(prefix).await?;
    store
        .put("example/flags/dark-mode", Bytes::from("on"))
        .await?;
    store.put("example/flags/beta", Bytes::from("off")).await?;

    // One read of the prefix, then one watch keeps the copy current.
    let flags = Cache::open(store.clone(), prefix).await?;
    for pair in flags.list() {
        println!(
            "copy   {} = {}",
            pair.key,
            String::from_utf8_lossy(&pair.value)
        );
    }

    // Changes come with the value they replaced.
    let mut changes = flags.changes();
    store.put("example/flags/beta", Bytes::from("on")).await?;
    store.delete("example/flags/dark-mode").await?;
    store.put("example/flags/new-ui", Bytes::from("on")).await?;
    let last = store
        .get("example/flags/new-ui")
        .await?
        .ok_or("just written")?;

    // Read your own writes: wait until the copy has applied that version.
    flags.wait_for(last.version).await?;
    for _ in 0..3 {
        match changes.next().await.ok_or("the copy is live")?? {
            CacheEvent::Put { pair, previous } => println!(
                "put    {} = {} (was {:?})",
                pair.key,
                String::from_utf8_lossy(&pair.value),
                previous.map(|p| String::from_utf8_lossy(&p.value).into_owned())
            ),
            CacheEvent::Delete { previous, .. } => println!(
                "delete {} (was {})",
                previous.key,
                String::from_utf8_lossy(&previous.value)
            ),
            other => println!("{other:?}"),
        }
    }
    // Reads come from memory: no request reaches the store.
    let beta = flags.get("example/flags/beta").ok_or("in the copy")?;
    println!(
        "now    beta = {}, {} flags, at version {}",
        String::from_utf8_lossy(&beta.value),
        flags.len(),
        flags.version()
    );
    store.delete_range(prefix).await?;
    Ok(())
}
