//! How many watches one store carries: opens 10,000 watches (100 keys × 100
//! watchers, then 10,000 distinct keys under one prefix) and measures the
//! time to establish them, resident memory per watch, upstream TCP
//! connections, and put → every watch notified.
//!
//! ```sh
//! cargo run --release --example scale -- memory://
//! cargo run --release --example scale -- consul://127.0.0.1:18500
//! cargo run --release --example scale -- etcd://127.0.0.1:22379 --watches 2000
//! ```
//!
//! Prints one Markdown table row per layout (see BENCHMARKS.md).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use kvmesh::{Store, Watch, WatchOptions};

/// Resident memory of this process, in bytes (Linux).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// Established TCP connections of this process to `port` (Linux `/proc`).
fn connections_to(port: u16) -> usize {
    let mut inodes = std::collections::HashSet::new();
    for fd in std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let target = target.to_string_lossy().into_owned();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
            {
                inodes.insert(inode.to_owned());
            }
        }
    }
    let mut count = 0;
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        for line in std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 {
                continue;
            }
            let remote = fields[2]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if fields[3] == "01" && remote == Some(port) && inodes.contains(fields[9]) {
                count += 1;
            }
        }
    }
    count
}

/// Waits until every watch has yielded one event; returns the time taken.
async fn all_notified(watches: &mut [Watch], started: Instant) -> Duration {
    let mut pending: FuturesUnordered<_> = watches.iter_mut().map(|w| w.next()).collect();
    while let Some(event) = pending.next().await {
        if !matches!(event, Some(Ok(_))) {
            eprintln!("a watch ended or failed: {event:?}");
        }
    }
    started.elapsed()
}

async fn layout(store: &std::sync::Arc<dyn Store>, port: u16, name: &str, keys: Vec<String>) {
    let slug: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
    let prefix = format!("kvscale/{}/{slug}/", std::process::id());
    let distinct: std::collections::BTreeSet<&String> = keys.iter().collect();
    let before = resident_bytes();
    let started = Instant::now();
    let mut watches = Vec::with_capacity(keys.len());
    for key in &keys {
        watches.push(
            store
                .watch(&format!("{prefix}{key}"), WatchOptions::default())
                .await
                .expect("watch"),
        );
    }
    let establish = started.elapsed();
    // Let lazily opened connections settle before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_watch = resident_bytes().saturating_sub(before) as f64 / keys.len() as f64;
    let connections = if port == 0 { 0 } else { connections_to(port) };

    let started = Instant::now();
    let puts: Vec<String> = distinct.iter().map(|k| format!("{prefix}{k}")).collect();
    let writer = store.clone();
    tokio::spawn(async move {
        futures::stream::iter(puts)
            .for_each_concurrent(32, |key| {
                let writer = writer.clone();
                async move {
                    writer
                        .put(&key, Bytes::from_static(b"up"))
                        .await
                        .expect("put");
                }
            })
            .await;
    });
    let notified = all_notified(&mut watches, started).await;
    // Some backends connect a watch when it is first polled: count again.
    let connections = if port == 0 {
        0
    } else {
        connections.max(connections_to(port))
    };
    println!(
        "| {name} | {} | {} | {:.2} s | {:.0} B | {connections} | {:.0} ms |",
        keys.len(),
        distinct.len(),
        establish.as_secs_f64(),
        per_watch,
        notified.as_secs_f64() * 1000.0
    );
    drop(watches);
    let _ = store.delete_range(&prefix).await;
}

#[tokio::main]
async fn main() -> kvmesh::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "memory://".into());
    let mut watches = 10_000usize;
    while let Some(arg) = args.next() {
        if arg == "--watches" {
            watches = args
                .next()
                .and_then(|n| n.parse().ok())
                .expect("--watches N");
        }
    }
    let port = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', '?', ',']).next())
        .and_then(|hostport| hostport.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let store = kvmesh::connect(&url).await?;
    let side = (watches as f64).sqrt().round() as usize;
    println!("{url}: {watches} watches");
    println!(
        "| layout | watches | keys | establish | RSS per watch | upstream TCP | put → all notified |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let shared: Vec<String> = (0..watches).map(|i| format!("k{:04}", i % side)).collect();
    layout(
        &store,
        port,
        &format!("{side} keys × {side} watchers"),
        shared,
    )
    .await;
    let distinct: Vec<String> = (0..watches).map(|i| format!("k{i:05}")).collect();
    layout(&store, port, "distinct keys", distinct).await;
    Ok(())
}
