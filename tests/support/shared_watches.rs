//! Checks that many watches share upstream connections, for any store.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kvmesh::{Bytes, KvEvent, Store, WatchOptions};

async fn next(watch: &mut kvmesh::Watch, what: &str) -> KvEvent {
    match tokio::time::timeout(Duration::from_secs(30), watch.next()).await {
        Ok(Some(Ok(event))) => event,
        other => panic!("{what}: expected an event, got {other:?}"),
    }
}

/// 1,000 watches on 10 keys under `prefix`: each sees its key's put.
pub async fn thousand_watches_on_ten_keys(store: &Arc<dyn Store>, prefix: &str) {
    let mut watches = Vec::new();
    for i in 0..1_000 {
        let key = format!("{prefix}{}", i % 10);
        let watch = store.watch(&key, WatchOptions::default()).await.unwrap();
        watches.push((key, watch));
    }
    for k in 0..10 {
        store
            .put(&format!("{prefix}{k}"), Bytes::from("up"))
            .await
            .unwrap();
    }
    for (key, watch) in &mut watches {
        match next(watch, key).await {
            KvEvent::Put(pair) => assert_eq!(&pair.key, key),
            other => panic!("{key}: expected its Put, got {other:?}"),
        }
    }
}

/// 500 key watches in directory `dir` (beyond any store's budget of own
/// upstreams): each sees its own key's changes and no other's.
pub async fn key_watches_in_one_directory(store: &Arc<dyn Store>, dir: &str) {
    store
        .put(&format!("{dir}k0499"), Bytes::from("old"))
        .await
        .unwrap();
    let mut watches = Vec::new();
    for i in 0..500 {
        let key = format!("{dir}k{i:04}");
        watches.push(store.watch(&key, WatchOptions::default()).await.unwrap());
    }
    match next(&mut watches[499], "initial state").await {
        KvEvent::Put(pair) => assert_eq!(pair.value, Bytes::from("old")),
        other => panic!("initial state: {other:?}"),
    }
    store
        .put(&format!("{dir}k0000"), Bytes::from("a"))
        .await
        .unwrap();
    store
        .put(&format!("{dir}k0250"), Bytes::from("b"))
        .await
        .unwrap();
    store.delete(&format!("{dir}k0499")).await.unwrap();
    for (i, expected) in [(0, Some("a")), (250, Some("b")), (499, None)] {
        match (next(&mut watches[i], "a watched key").await, expected) {
            (KvEvent::Put(pair), Some(value)) => {
                assert_eq!(pair.key, format!("{dir}k{i:04}"));
                assert_eq!(pair.value, Bytes::from(value));
            }
            (KvEvent::Delete { key, .. }, None) => assert_eq!(key, format!("{dir}k{i:04}")),
            (other, _) => panic!("watch {i}: {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in [1, 100, 251, 498] {
        assert!(
            futures::FutureExt::now_or_never(watches[i].next()).is_none(),
            "watch {i} saw a change of another key"
        );
    }
}
