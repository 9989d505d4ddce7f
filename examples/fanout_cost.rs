//! What one put seen by one watcher costs on the memory store, against the
//! same job done by hand (a bare map written, then the event sent through a
//! `tokio::sync::broadcast` channel): the `put_to_all_watchers/1` row of
//! `benches/memory.rs`, made to be counted by `valgrind --tool=callgrind`.
//! `scripts/request-cost memory` runs it.
//!
//! ```sh
//! cargo build --release --example fanout_cost
//! target/release/examples/fanout_cost kvmesh 10000
//! ```
//!
//! Arguments: `SIDE COUNT`, with `SIDE` `kvmesh` or `bare`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use futures::StreamExt;
use kvmesh::{Bytes, KvEvent, KvPair, Store, WatchOptions};
use tokio::sync::{Notify, broadcast};

const KEY: &str = "bench/watched";

/// Wakes the writer when the watcher has the event.
#[derive(Default)]
struct Arrival {
    count: AtomicUsize,
    arrived: Notify,
}

impl Arrival {
    fn arrived(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
        self.arrived.notify_one();
    }

    async fn wait(&self) {
        self.arrived.notified().await;
    }
}

async fn kvmesh_puts(count: u64, arrival: Arc<Arrival>) {
    let store: Arc<dyn Store> = kvmesh::connect("memory://").await.expect("connect");
    let mut watch = store
        .watch(KEY, WatchOptions::after(0))
        .await
        .expect("watch");
    let watcher = arrival.clone();
    tokio::spawn(async move {
        while let Some(Ok(KvEvent::Put(_))) = watch.next().await {
            watcher.arrived();
        }
    });
    for _ in 0..count {
        store.put(KEY, Bytes::from_static(b"v")).await.expect("put");
        arrival.wait().await;
    }
}

async fn bare_puts(count: u64, arrival: Arc<Arrival>) {
    let map = RwLock::new(BTreeMap::<String, (Bytes, u64)>::new());
    let (tx, mut rx) = broadcast::channel::<Arc<KvEvent>>(32);
    let watcher = arrival.clone();
    tokio::spawn(async move {
        while let Ok(event) = rx.recv().await {
            // Hand out an owned event, as a watch does.
            std::hint::black_box(KvEvent::clone(&event));
            watcher.arrived();
        }
    });
    for version in 1..=count {
        let value = Bytes::from_static(b"v");
        map.write()
            .expect("not poisoned")
            .insert(KEY.to_owned(), (value.clone(), version));
        let event = KvEvent::Put(KvPair {
            key: KEY.to_owned(),
            value,
            version,
        });
        tx.send(Arc::new(event)).expect("a receiver");
        arrival.wait().await;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [side, count] = args.as_slice() else {
        eprintln!("usage: fanout_cost kvmesh|bare COUNT");
        std::process::exit(2);
    };
    let count: u64 = count.parse().expect("COUNT is a number");
    let arrival = Arc::new(Arrival::default());
    let started = Instant::now();
    match side.as_str() {
        "kvmesh" => kvmesh_puts(count, arrival.clone()).await,
        _ => bare_puts(count, arrival.clone()).await,
    }
    assert_eq!(arrival.count.load(Ordering::Acquire) as u64, count);
    let per_put = started.elapsed() / count.max(1) as u32;
    eprintln!("{side}: {per_put:?} a put seen by one watcher");
}
