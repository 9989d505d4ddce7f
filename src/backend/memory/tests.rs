//! The memory store's own channels, registry and catch-up, from inside.

use super::*;
use futures::StreamExt;

#[tokio::test]
async fn dropped_watches_leave_no_channels_or_registry_entries() {
    let store = MemoryStore::new(&Config::default());
    for i in 0..1_000 {
        let _key = store
            .watch(&format!("k{i}"), WatchOptions::default())
            .await
            .unwrap();
        let _range = store
            .watch_range(&format!("p{i}/"), WatchOptions::default())
            .await
            .unwrap();
    }
    assert_eq!(store.shared.read().channel_count(), 0);
    assert_eq!(store.shared.registry.len(), 0);
}

#[tokio::test]
async fn a_lagging_watch_catches_up_without_gaps() {
    let store = MemoryStore::new(&Config::default());
    let mut watch = store
        .watch_range("k/", WatchOptions::default())
        .await
        .unwrap();
    // Far more than the channel holds, none read yet.
    for i in 0..500u32 {
        store.put("k/x", Bytes::from(i.to_string())).await.unwrap();
    }
    let mut last = 0;
    for i in 0..500u32 {
        let event = watch.next().await.unwrap().unwrap();
        assert!(event.version() > last);
        last = event.version();
        match event {
            crate::KvEvent::Put(pair) => assert_eq!(pair.value, i.to_string()),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Once a commit to disk failed, every change is refused before it touches
/// the state: deletes, txns and releases as well as puts.
#[tokio::test]
async fn after_a_failed_commit_every_change_is_refused() {
    use crate::Store;
    let gate = Arc::new(durable::Gate::new(0));
    let durable = Durable {
        gate: gate.clone(),
        location: "test".into(),
        _committer: Box::new(()),
    };
    let store = MemoryStore::with_state(&Config::default(), State::new(10), Some(durable));
    // A key and a lock the failed commit leaves behind (in memory only).
    gate.committed(u64::MAX);
    store.put("k", Bytes::from("v")).await.unwrap();
    let lock = store.acquire("lock", Bytes::from("me")).await.unwrap();
    gate.failed(Error::Storage {
        path: "test".into(),
        message: "committing a write: disk full".into(),
        source: None,
    });
    let refused = |result: Result<()>| matches!(result, Err(Error::Storage { .. }));
    assert!(refused(store.delete("k").await));
    assert!(refused(store.delete_range("k").await));
    assert!(refused(store.atomic_delete("k", 1).await.map(drop)));
    assert!(refused(
        store.txn(crate::Txn::new().delete("k")).await.map(drop)
    ));
    assert!(refused(store.release(lock.session()).await));
    assert!(refused(store.put("k2", Bytes::from("v")).await));
    assert_eq!(
        store.get("k").await.unwrap().unwrap().value,
        "v",
        "nothing changed"
    );
    std::mem::forget(lock); // its background release would be refused as well
}
