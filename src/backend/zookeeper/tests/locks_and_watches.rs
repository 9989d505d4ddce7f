//! Watches and locks against the real ZooKeeper.

use std::time::Duration;

use bytes::Bytes;

use super::{server, store};
use crate::Store;

/// The next event within 10 s.
async fn next(watch: &mut crate::Watch) -> crate::KvEvent {
    use futures::StreamExt;
    tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("an event within 10 s")
        .expect("the watch goes on")
        .expect("no error")
}

#[tokio::test]
async fn a_key_watch_sees_puts_and_dated_deletes() {
    use crate::{KvEvent, WatchOptions};
    let Some(addr) = server() else { return };
    let (store, _) = store(&addr);
    store.put("k", Bytes::from("1")).await.unwrap();
    let first = store.get("k").await.unwrap().expect("k");
    let mut watch = store.watch("k", WatchOptions::default()).await.unwrap();
    assert_eq!(next(&mut watch).await, KvEvent::Put(first.clone()));
    store.put("k", Bytes::from("2")).await.unwrap();
    let second = store.get("k").await.unwrap().expect("k");
    assert_eq!(next(&mut watch).await, KvEvent::Put(second.clone()));
    store.delete("k").await.unwrap();
    let KvEvent::Delete { key, version } = next(&mut watch).await else {
        panic!("a delete");
    };
    assert_eq!(key, "k");
    assert!(version > second.version, "{version} > {}", second.version);
    store.put("k", Bytes::from("3")).await.unwrap();
    let KvEvent::Put(third) = next(&mut watch).await else {
        panic!("a put");
    };
    assert!(third.version > version);
    assert_eq!(store.cancel_watch("k"), 1);
    use futures::StreamExt;
    assert!(watch.next().await.is_none(), "a cancelled watch ends");
}

#[tokio::test]
async fn a_range_watch_sees_its_prefix_only() {
    use crate::{KvEvent, WatchOptions};
    let Some(addr) = server() else { return };
    let (store, _) = store(&addr);
    store.put("r/b", Bytes::from("b")).await.unwrap();
    store.put("r/a/deep", Bytes::from("d")).await.unwrap();
    store.put("rx", Bytes::from("beside")).await.unwrap();
    let mut watch = store
        .watch_range("r/", WatchOptions::default())
        .await
        .unwrap();
    assert_eq!(next(&mut watch).await.key(), "r/a/deep");
    let b = next(&mut watch).await;
    assert_eq!(b.key(), "r/b");
    store.put("rx", Bytes::from("beside again")).await.unwrap();
    store.put("r/c", Bytes::from("c")).await.unwrap();
    assert_eq!(
        next(&mut watch).await.key(),
        "r/c",
        "only keys under the prefix"
    );
    store.delete_range("r/a").await.unwrap();
    assert!(matches!(next(&mut watch).await, KvEvent::Delete { ref key, .. } if key == "r/a/deep"));
    // `after`: no initial state, only what is newer.
    let mut later = store
        .watch_range("r/", WatchOptions::after(b.version()))
        .await
        .unwrap();
    assert_eq!(next(&mut later).await.key(), "r/c");
    // A delete newer than `after` is a change too (its marker dates it).
    assert!(matches!(next(&mut later).await, KvEvent::Delete { ref key, .. } if key == "r/a/deep"));
    store.put("r/d", Bytes::from("d")).await.unwrap();
    assert_eq!(next(&mut later).await.key(), "r/d");
    assert_eq!(next(&mut watch).await.key(), "r/d");
    assert_eq!(store.cancel_watch_range("r/"), 2);
}

#[tokio::test]
async fn a_key_named_like_a_lock_contender_blocks_nothing() {
    let Some(addr) = server() else { return };
    let (store, _) = store(&addr);
    store
        .put("job/_c_x-lock-0000000001", Bytes::from("v"))
        .await
        .unwrap();
    let lock = store.try_acquire("job", Bytes::from("me")).await.unwrap();
    let lock = lock.expect("no contender stands before it");
    assert_eq!(store.lock_holder("job").await.unwrap().unwrap().value, "me");
    lock.release().await.unwrap();
    assert_eq!(store.lock_holder("job").await.unwrap(), None);
    assert!(
        store
            .get("job/_c_x-lock-0000000001")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_lock_lost_then_released_leaves_no_value() {
    let Some(addr) = server() else { return };
    let (store, _) = store(&addr);
    let lock = store.acquire("l", Bytes::from("me")).await.unwrap();
    // Given up from elsewhere: the contender goes, the value with it.
    store.release(lock.session()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), lock.lost())
        .await
        .expect("lost");
    lock.release().await.unwrap();
    assert_eq!(store.get("l").await.unwrap(), None);
}

#[tokio::test]
async fn a_former_ttl_key_with_children_is_made_permanent() {
    let Some(addr) = server() else { return };
    let (store, root) = store(&addr);
    let ttl = crate::PutOptions::ttl(Duration::from_millis(500));
    store.put_with("t", Bytes::from("1"), ttl).await.unwrap();
    store.put("t/x", Bytes::from("x")).await.unwrap();
    store.delete("t/x").await.unwrap();
    for _ in 0..4 {
        let run =
            super::super::collect::collect(&store.session, &root, Duration::ZERO, Duration::ZERO);
        run.await.unwrap();
    }
    store.put("t", Bytes::from("2")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(store.get("t").await.unwrap().expect("t").value, "2");
}
