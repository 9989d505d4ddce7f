//! A local store's own channels, registry and catch-up, from inside.

use super::*;
use futures::StreamExt;

#[tokio::test]
async fn dropped_watches_leave_no_channels_or_registry_entries() {
    let store = LocalStore::new(&Config::default());
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
    let store = LocalStore::new(&Config::default());
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
