//! The conformance suite on the embedded memory store, on tokio's paused
//! clock so that TTL and timing cases are instant and deterministic.

use crate::conformance;

use conformance::{BackendTraits, Ctx};

async fn memory_ctx(case: &str) -> Option<Ctx> {
    let store = kvmesh::connect("memory://")
        .await
        .expect("memory:// always opens");
    Some(Ctx::new(store, case, BackendTraits::MEMORY))
}

conformance::suite!(
    factory = memory_ctx,
    test = tokio::test(start_paused = true)
);

/// The whole suite again through a `Prefixed` view: the view keeps every
/// rule of the contract.
mod prefixed {
    use std::sync::Arc;

    use kvmesh::StoreExt;

    use crate::conformance::{self, BackendTraits, Ctx};

    async fn prefixed_ctx(case: &str) -> Option<Ctx> {
        let store = kvmesh::connect("memory://").await.expect("memory://");
        let view = Arc::new(store.with_prefix("view/"));
        Some(Ctx::new(view, case, BackendTraits::MEMORY))
    }

    conformance::suite!(
        factory = prefixed_ctx,
        test = tokio::test(start_paused = true)
    );

    #[tokio::test]
    async fn keys_live_under_the_prefix_and_come_back_without_it() {
        use futures::StreamExt;
        use kvmesh::{Bytes, KvEvent, Store, WatchOptions};

        let store = kvmesh::connect("memory://").await.unwrap();
        let app = store.clone().with_prefix("app/");
        let nested = app.clone().with_prefix("jobs/");
        store.put("other", Bytes::from("x")).await.unwrap();
        let mut watch = app.watch_range("", WatchOptions::default()).await.unwrap();
        nested.put("1", Bytes::from("queued")).await.unwrap();
        assert_eq!(
            store.get("app/jobs/1").await.unwrap().unwrap().value,
            "queued"
        );
        assert_eq!(nested.get("1").await.unwrap().unwrap().key, "1");
        let keys: Vec<String> = app
            .get_range("")
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(keys, ["jobs/1"]);
        match watch.next().await {
            Some(Ok(KvEvent::Put(pair))) => assert_eq!(pair.key, "jobs/1"),
            other => panic!("{other:?}"),
        }
        let lock = nested.acquire("leader", Bytes::from("me")).await.unwrap();
        assert_eq!(lock.key(), "leader");
        assert!(store.get("app/jobs/leader").await.unwrap().is_some());
        assert_eq!(app.cancel_watch_range(""), 1);
        assert!(watch.next().await.is_none());
        lock.release().await.unwrap();
        nested.delete_range("1").await.unwrap();
        assert_eq!(
            store.get_range("").await.unwrap().len(),
            1,
            "only `other` is left"
        );
        assert!(matches!(
            app.get("").await,
            Err(kvmesh::Error::InvalidKey { .. })
        ));
    }
}

mod memory_only {
    use futures::StreamExt;
    use kvmesh::{Bytes, Error, KvEvent, WatchOptions};

    use crate::conformance::next_event;

    /// A watch that falls behind in the middle of a big txn catches up with
    /// the rest of it: every write once, all at the txn's version.
    #[tokio::test]
    async fn a_watch_lagging_inside_a_txn_misses_and_repeats_nothing() {
        for history in [10_000, 4] {
            let url = format!("memory://?history={history}");
            let store = kvmesh::connect(&url).await.unwrap();
            let mut watch = store
                .watch_range("t/", WatchOptions::default())
                .await
                .unwrap();
            let mut txn = kvmesh::Txn::new();
            for i in 0..40 {
                txn = txn.put(&format!("t/{i:02}"), Bytes::from("v"));
            }
            let kvmesh::TxnResult::Committed { version } = store.txn(txn).await.unwrap() else {
                panic!("a txn without checks commits");
            };
            let mut keys = Vec::new();
            while keys.len() < 40 {
                match next_event(&mut watch).await {
                    KvEvent::Put(pair) => {
                        assert_eq!(pair.version, version);
                        keys.push(pair.key);
                    }
                    other => panic!("{other:?}"),
                }
            }
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), 40, "history {history}: each once");
        }
    }

    /// A watch that delivered part of a txn and then fell behind, with no
    /// history to replay (so it re-reads), yields the rest of the txn and
    /// what came after, each change once: the re-read starts before the
    /// txn's version and skips the keys of it already delivered.
    #[tokio::test]
    async fn a_reread_from_the_middle_of_a_txn_repeats_and_misses_nothing() {
        let store = kvmesh::connect("memory://?history=0").await.unwrap();
        let mut watch = store
            .watch_range("t/", WatchOptions::default())
            .await
            .unwrap();
        let mut txn = kvmesh::Txn::new();
        for key in ["t/a", "t/b", "t/c", "t/d", "t/e"] {
            txn = txn.put(key, Bytes::from("txn"));
        }
        store.txn(txn).await.unwrap();
        let mut keys = Vec::new();
        for _ in 0..2 {
            keys.push(next_event(&mut watch).await.key().to_owned());
        }
        // Far more than the watch's channel holds: it falls behind.
        for i in 0..20 {
            store
                .put(&format!("t/k{i:02}"), Bytes::from("later"))
                .await
                .unwrap();
        }
        while keys.len() < 25 {
            keys.push(next_event(&mut watch).await.key().to_owned());
        }
        let mut once = keys.clone();
        once.sort();
        once.dedup();
        assert_eq!(once.len(), 25, "each change once: {keys:?}");
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(100), watch.next())
                .await
                .is_err(),
            "nothing more"
        );
    }

    #[tokio::test]
    async fn max_value_size_refuses_what_production_would() {
        let store = kvmesh::connect("memory://?max_value_size=4").await.unwrap();
        store.put("k", Bytes::from("four")).await.unwrap();
        let refused = store.put("k", Bytes::from("fives")).await.unwrap_err();
        assert!(
            matches!(&refused, Error::ValueTooLarge { key, size: 5, limit: 4 } if key == "k"),
            "{refused:?}"
        );
        assert!(refused.to_string().contains("\"k\""), "{refused}");
        let big = Bytes::from("fives");
        assert!(store.atomic_put("k", big.clone(), Some(1)).await.is_err());
        assert!(store.try_acquire("l", big.clone()).await.is_err());
        assert!(store.acquire("l", big).await.is_err());
        assert_eq!(store.get("k").await.unwrap().unwrap().value, "four");
    }

    #[tokio::test]
    async fn each_connect_is_a_new_store_and_clones_share_one() {
        let a = kvmesh::connect("memory://").await.unwrap();
        let b = kvmesh::connect("memory://").await.unwrap();
        a.put("k", Bytes::from("a")).await.unwrap();
        assert_eq!(b.get("k").await.unwrap(), None);
        let a2 = a.clone();
        assert_eq!(a2.get("k").await.unwrap().unwrap().value, "a");
    }

    #[tokio::test]
    async fn after_older_than_the_history_yields_the_difference() {
        let store = kvmesh::connect("memory://?history=2").await.unwrap();
        store.put("d/keep", Bytes::from("1")).await.unwrap(); // v1
        store.put("d/gone", Bytes::from("2")).await.unwrap(); // v2
        let start = store.get("d/gone").await.unwrap().unwrap().version;
        store.put("d/keep", Bytes::from("3")).await.unwrap(); // v3
        store.delete("d/gone").await.unwrap(); // v4
        store.put("d/new", Bytes::from("5")).await.unwrap(); // v5
        store.put("other", Bytes::from("6")).await.unwrap(); // v6: history now holds v5, v6

        let mut watch = store
            .watch_range("d/", WatchOptions::after(start))
            .await
            .unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(next_event(&mut watch).await);
        }
        let summary: Vec<(String, bool)> = got
            .iter()
            .map(|e| (e.key().to_owned(), matches!(e, KvEvent::Put(_))))
            .collect();
        assert_eq!(
            summary,
            [
                ("d/keep".into(), true),
                ("d/gone".into(), false),
                ("d/new".into(), true)
            ]
        );
        assert!(got.windows(2).all(|w| w[0].version() < w[1].version()));
    }

    #[tokio::test]
    async fn unrecoverable_history_is_an_error_not_a_gap() {
        let store = kvmesh::connect("memory://?history=0").await.unwrap();
        for i in 0..1_100 {
            let key = format!("t/{i}");
            store.put(&key, Bytes::new()).await.unwrap();
            store.delete(&key).await.unwrap();
        }
        match store.watch_range("t/", WatchOptions::after(1)).await {
            Err(Error::Compacted { requested: 1, .. }) => {}
            other => panic!("expected Compacted, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_slow_range_watcher_beyond_the_history_still_converges() {
        let store = kvmesh::connect("memory://?history=8").await.unwrap();
        let mut watch = store
            .watch_range("s/", WatchOptions::default())
            .await
            .unwrap();
        for i in 0..200u32 {
            store
                .put(&format!("s/{}", i % 5), Bytes::from(i.to_string()))
                .await
                .unwrap();
        }
        store.delete("s/0").await.unwrap();
        let mut state = std::collections::BTreeMap::new();
        let mut last = 0;
        while state.len() != 4 || state.get("s/4").map(|v: &Bytes| v.as_ref()) != Some(b"199") {
            let event = watch.next().await.unwrap().unwrap();
            assert!(event.version() > last);
            last = event.version();
            match event {
                KvEvent::Put(p) => state.insert(p.key, p.value),
                KvEvent::Delete { key, .. } => state.remove(&key),
            };
        }
        assert!(!state.contains_key("s/0"));
    }
}

/// `StoreExt` and the pointer impls, as a user reaches for them.
mod extensions {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::StreamExt as _;
    use kvmesh::{JsonEvent, Store, StoreExt, WatchOptions};

    async fn takes_any_store(store: impl Store) -> bool {
        store.exists("a").await.unwrap()
    }

    #[tokio::test]
    async fn json_values_updates_and_lock_deadlines() {
        let store = kvmesh::connect("memory://").await.unwrap();
        store.put_value("a", "1").await.unwrap();
        assert!(
            takes_any_store(store.clone()).await,
            "Arc<dyn Store> is a Store"
        );
        assert!(takes_any_store(&store).await);

        store.put_json("n", &vec![1, 2]).await.unwrap();
        assert_eq!(
            store.get_json::<Vec<u32>>("n").await.unwrap(),
            Some(vec![1, 2])
        );
        assert!(
            store
                .get_json::<Vec<u32>>("missing")
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            store.get_json::<u32>("a-not-json").await,
            Ok(None)
        ));
        store.put_value("text", "not json").await.unwrap();
        assert!(matches!(
            store.get_json::<u32>("text").await,
            Err(kvmesh::Error::MalformedReply { .. })
        ));

        let mut watch = store
            .watch_json::<Vec<u32>>("n", WatchOptions::default())
            .await
            .unwrap();
        match watch.next().await {
            Some(Ok(JsonEvent::Put { value, .. })) => assert_eq!(value, [1, 2]),
            other => panic!("{other:?}"),
        }

        // Concurrent updates lose nothing.
        store.put_json("count", &0u32).await.unwrap();
        let tasks = (0..8).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    store
                        .update("count", |old| {
                            let n: u32 = serde_json::from_slice(old.unwrap()).unwrap();
                            serde_json::to_vec(&(n + 1)).unwrap().into()
                        })
                        .await
                        .unwrap();
                }
            })
        });
        for task in futures::future::join_all(tasks).await {
            task.unwrap();
        }
        assert_eq!(store.get_json::<u32>("count").await.unwrap(), Some(160));

        let held = store.acquire("lock", "me".into()).await.unwrap();
        let waited = store
            .acquire_timeout("lock", "you", Duration::from_millis(50))
            .await
            .unwrap();
        assert!(waited.is_none());
        held.release().await.unwrap();
        let got = store
            .acquire_timeout("lock", "you", Duration::from_millis(50))
            .await
            .unwrap();
        assert!(got.is_some());
        let boxed: Box<dyn Store> = Box::new(Arc::clone(&store));
        assert!(boxed.exists("lock").await.unwrap());
    }
}

/// A build without a backend's feature refuses its URLs, naming the feature.
#[cfg(not(all(feature = "consul", feature = "etcd")))]
#[tokio::test]
async fn a_backend_left_out_of_the_build_names_its_feature() {
    for (url, feature) in [
        ("consul://127.0.0.1:8500", "consul"),
        ("etcd://127.0.0.1:2379", "etcd"),
    ] {
        if cfg!(feature = "consul") && feature == "consul"
            || cfg!(feature = "etcd") && feature == "etcd"
        {
            continue;
        }
        let error = kvmesh::connect(url).await.expect_err("refused");
        assert!(
            matches!(error, kvmesh::Error::Unsupported { .. }),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .contains(&format!("`{feature}` cargo feature")),
            "{error}"
        );
    }
}

/// A `changes()` subscriber that stops reading is told it lagged, once,
/// and neither the copy nor a subscriber that keeps up loses anything.
#[tokio::test(start_paused = true)]
async fn a_lagging_cache_subscriber_errs_once_and_slows_nothing() {
    use futures::StreamExt;
    use kvmesh::cache::Cache;
    let store = kvmesh::connect("memory://").await.unwrap();
    let cache = Cache::open(store.clone(), "flags/").await.unwrap();
    let mut idle = cache.changes();
    let mut reader = cache.changes();
    let reading = tokio::spawn(async move {
        let mut seen = 0u32;
        while seen < 10_000 {
            reader.next().await.expect("live").expect("keeps up");
            seen += 1;
        }
        seen
    });
    for i in 0..10_000u32 {
        store
            .put(
                &format!("flags/{}", i % 50),
                kvmesh::Bytes::from(i.to_string()),
            )
            .await
            .unwrap();
        tokio::task::yield_now().await; // the reader keeps up; `idle` does not
    }
    assert_eq!(reading.await.unwrap(), 10_000);
    let last = store.get("flags/49").await.unwrap().unwrap();
    cache.wait_for(last.version).await.unwrap();
    assert_eq!(cache.list(), store.get_range("flags/").await.unwrap());
    match idle.next().await {
        Some(Err(kvmesh::Error::Lagged { skipped })) => assert!(skipped > 0),
        other => panic!("expected Lagged, got {other:?}"),
    }
    assert!(idle.next().await.is_none(), "the lagged stream ends");
}
