//! The backend against a real ZooKeeper (`KV_ZOOKEEPER_ADDR`, from
//! `scripts/servers`), each test under a root of its own.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use zookeeper_client as zk;

use super::ZooKeeperStore;
use super::nodes::PARENT;
use crate::{Config, Error, Store};

/// The server's address, or `None` (said) when the tests run without it.
fn server() -> Option<String> {
    crate::test_servers::server("KV_ZOOKEEPER_ADDR")
}

/// A store under a root no other test uses, and that root.
fn store(addr: &str) -> (ZooKeeperStore, String) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let root = format!(
        "/kvmesh-test/{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let store = ZooKeeperStore::new(&[&format!("{addr}{root}")], &Config::default()).unwrap();
    (store, root)
}

async fn raw(addr: &str) -> zk::Client {
    zk::Client::connect(addr).await.unwrap()
}

fn keys(pairs: &[crate::KvPair]) -> Vec<&str> {
    pairs.iter().map(|p| p.key.as_str()).collect()
}

#[tokio::test]
async fn keys_round_trip_at_their_documented_paths() {
    let Some(addr) = server() else { return };
    let (store, root) = store(&addr);
    let awkward = [
        "plain",
        "dir/sub/leaf",
        "a//b",
        "/lead",
        "trail/",
        "..",
        "a/./b",
        "100%",
        "tab\t",
        "nul\0",
        "🦀",
        "space ?#&",
    ];
    for key in awkward {
        store.put(key, Bytes::from(key)).await.unwrap();
        let pair = store.get(key).await.unwrap().expect(key);
        assert_eq!((pair.key.as_str(), &pair.value[..]), (key, key.as_bytes()));
    }
    let listed = store.get_range("").await.unwrap();
    let mut expected = awkward.to_vec();
    expected.sort();
    assert_eq!(keys(&listed), expected, "nothing else appeared");
    // Where ZooKeeper's own clients find them.
    let client = raw(&addr).await;
    let (data, _) = client
        .get_data(&format!("{root}/dir/sub/leaf"))
        .await
        .unwrap();
    assert_eq!(data, b"dir/sub/leaf");
    let (data, _) = client.get_data(&format!("{root}/a/%/b")).await.unwrap();
    assert_eq!(data, b"a//b");
    let (data, _) = client.get_data(&format!("{root}/dir")).await.unwrap();
    assert_eq!(data, PARENT, "a parent made only to hold keys");
    assert_eq!(store.get("dir").await.unwrap(), None, "a parent is no key");
    store.delete_range("a").await.unwrap();
    for key in awkward {
        store.delete(key).await.unwrap();
    }
    assert!(store.get_range("").await.unwrap().is_empty());
    // Deleted keys and emptied parents stay as markers until collected.
    let (data, _) = client.get_data(&format!("{root}/plain")).await.unwrap();
    assert_eq!(data, PARENT, "a deleted key's node holds the marker");
    // Two runs per level: marked, then removed.
    for _ in 0..10 {
        let collected =
            super::collect::collect(&store.session, &root, Duration::ZERO, Duration::ZERO);
        collected.await.unwrap();
    }
    let (left, _) = client.get_children(&root).await.unwrap();
    assert_eq!(left, ["%collected"], "every marker was collected");
    // A held lock's contender node (a marker, idle) is never collected.
    let lock = store.acquire("held", Bytes::from("me")).await.unwrap();
    let collected = super::collect::collect(&store.session, &root, Duration::ZERO, Duration::ZERO);
    collected.await.unwrap();
    assert!(!lock.is_lost(), "the lock survives a collection");
    assert!(client.check_stat(lock.session()).await.unwrap().is_some());
    lock.release().await.unwrap();
    // Another run within `every` is skipped; markers younger than `idle` stay.
    store.put("young/key", Bytes::from("1")).await.unwrap();
    store.delete("young/key").await.unwrap();
    let skipped = super::collect::collect(
        &store.session,
        &root,
        Duration::ZERO,
        Duration::from_secs(60),
    );
    assert_eq!(skipped.await.unwrap(), None);
    let young = super::collect::collect(
        &store.session,
        &root,
        Duration::from_secs(60),
        Duration::ZERO,
    );
    assert_eq!(young.await.unwrap(), Some(0));
}

#[tokio::test]
async fn a_key_and_keys_below_it() {
    let Some(addr) = server() else { return };
    let (store, _) = store(&addr);
    store.put("a/b", Bytes::from("below")).await.unwrap();
    assert_eq!(store.get("a").await.unwrap(), None);
    // `a` was a parent: creating it only if absent works.
    assert!(
        store
            .atomic_put("a", Bytes::from("above"), None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .atomic_put("a", Bytes::from("again"), None)
            .await
            .unwrap()
    );
    let a = store.get("a").await.unwrap().expect("a");
    assert!(store.get("a/b").await.unwrap().is_some());
    // Deleting `a` keeps `a/b`; `a` is a parent again.
    assert!(store.atomic_delete("a", a.version).await.unwrap());
    assert_eq!(store.get("a").await.unwrap(), None);
    assert_eq!(store.get("a/b").await.unwrap().expect("a/b").value, "below");
    store.put("a", Bytes::from("back")).await.unwrap();
    store.delete("a").await.unwrap();
    assert_eq!(store.get("a").await.unwrap(), None);
    assert_eq!(keys(&store.get_range("a").await.unwrap()), ["a/b"]);
}

#[tokio::test]
async fn ranges_are_plain_string_prefixes() {
    let Some(addr) = server() else { return };
    let (store, _) = store(&addr);
    for key in ["p", "p/b", "p/a", "p/a/c", "pa", "q"] {
        store.put(key, Bytes::from(key)).await.unwrap();
    }
    let range = |prefix: &'static str| {
        let store = &store;
        async move { store.get_range(prefix).await.unwrap() }
    };
    assert_eq!(keys(&range("p/").await), ["p/a", "p/a/c", "p/b"]);
    assert_eq!(keys(&range("p/a").await), ["p/a", "p/a/c"]);
    assert_eq!(keys(&range("p").await), ["p", "p/a", "p/a/c", "p/b", "pa"]);
    assert_eq!(keys(&range("").await).len(), 6);
    assert!(range("nothing/").await.is_empty());
    store.delete_range("p/").await.unwrap();
    assert_eq!(keys(&range("").await), ["p", "pa", "q"]);
    assert!(matches!(
        store.delete_range("").await,
        Err(Error::InvalidKey { .. })
    ));
}

#[tokio::test]
async fn versions_order_writes_and_guard_compare_and_swap() {
    let Some(addr) = server() else { return };
    let (store, _) = store(&addr);
    assert!(store.atomic_put("k", Bytes::from("1"), None).await.unwrap());
    let first = store.get("k").await.unwrap().expect("k").version;
    store.put("other", Bytes::from("x")).await.unwrap();
    assert!(
        !store
            .atomic_put("k", Bytes::from("2"), Some(first + 1))
            .await
            .unwrap()
    );
    assert!(
        store
            .atomic_put("k", Bytes::from("2"), Some(first))
            .await
            .unwrap()
    );
    let second = store.get("k").await.unwrap().expect("k").version;
    let other = store.get("other").await.unwrap().expect("other").version;
    assert!(
        first < other && other < second,
        "{first} < {other} < {second}"
    );
    assert!(
        !store
            .atomic_put("k", Bytes::from("3"), Some(first))
            .await
            .unwrap(),
        "stale"
    );
    assert!(!store.atomic_delete("k", first).await.unwrap());
    assert!(!store.atomic_delete("missing", first).await.unwrap());
    assert!(
        !store
            .atomic_put("missing", Bytes::from("x"), Some(first))
            .await
            .unwrap()
    );
    assert!(store.atomic_delete("k", second).await.unwrap());
    assert_eq!(store.get("k").await.unwrap(), None);
}

#[tokio::test]
async fn values_zookeeper_would_refuse_are_refused_first() {
    let Some(addr) = server() else { return };
    let (store, _) = store(&addr);
    let large = Bytes::from(vec![7u8; super::nodes::MAX_VALUE + 1]);
    assert!(matches!(
        store.put("big", large).await,
        Err(Error::ValueTooLarge { .. })
    ));
    let fits = Bytes::from(vec![7u8; super::nodes::MAX_VALUE]);
    store.put("big", fits.clone()).await.unwrap();
    assert_eq!(store.get("big").await.unwrap().expect("big").value, fits);
    let marker = Bytes::from_static(PARENT);
    assert!(matches!(
        store.put("m", marker).await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(store.get("").await, Err(Error::InvalidKey { .. })));
}

#[tokio::test]
async fn ttl_keys_expire_and_a_plain_put_keeps_one() {
    let Some(addr) = server() else { return };
    let (store, root) = store(&addr);
    let ttl = Duration::from_millis(500);
    store
        .put_with("gone", Bytes::from("1"), crate::PutOptions::ttl(ttl))
        .await
        .unwrap();
    store
        .put_with("kept", Bytes::from("1"), crate::PutOptions::ttl(ttl))
        .await
        .unwrap();
    let before = store.get("kept").await.unwrap().expect("kept");
    store.put("kept", Bytes::from("2")).await.unwrap();
    store
        .put_with("again", Bytes::from("1"), crate::PutOptions::ttl(ttl))
        .await
        .unwrap();
    store
        .put_with(
            "again",
            Bytes::from("2"),
            crate::PutOptions::ttl(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    let client = raw(&addr).await;
    let (_, stat) = client.get_data(&format!("{root}/kept")).await.unwrap();
    assert_eq!(stat.cversion, 0, "made a plain node again");
    assert!(store.get("kept").await.unwrap().expect("kept").version > before.version);
    // The server's container check runs every second (scripts/servers).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.get("gone").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the TTL key outlived its TTL by 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Well past the TTL the plain key had as a TTL key, it is still there,
    // as is the key whose TTL a later write made longer.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(store.get("kept").await.unwrap().expect("kept").value, "2");
    assert_eq!(store.get("again").await.unwrap().expect("again").value, "2");
    // A TTL on a key with keys below it cannot be kept by ZooKeeper.
    store.put("dir/leaf", Bytes::from("1")).await.unwrap();
    assert!(matches!(
        store
            .put_with("dir", Bytes::from("1"), crate::PutOptions::ttl(ttl))
            .await,
        Err(Error::Unsupported { .. })
    ));
}

#[tokio::test]
async fn an_unreachable_server_is_unreachable() {
    let store = ZooKeeperStore::new(
        &["127.0.0.1:1"],
        &Config {
            timeout: Duration::from_millis(500),
            ..Config::default()
        },
    )
    .unwrap();
    assert!(matches!(
        store.get("k").await,
        Err(Error::Unreachable { .. } | Error::Timeout { .. })
    ));
    assert!(matches!(
        ZooKeeperStore::new(&["a,b"], &Config::default()),
        Err(Error::InvalidArgument(_))
    ));
}

mod locks_and_watches;
