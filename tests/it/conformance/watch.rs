//! Watches: initial state, changes, `after`, ranges, order, cancellation.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;

use kvmesh::{Bytes, KvEvent, PutOptions, WatchOptions};

use super::{Ctx, assert_ended, assert_quiet, events_until, next_event};

fn put_of(event: &KvEvent) -> (&str, &[u8]) {
    match event {
        KvEvent::Put(pair) => (&pair.key, &pair.value),
        other => panic!("expected a Put, got {other:?}"),
    }
}

pub async fn key_watch_initial_state_then_changes(ctx: Ctx) {
    let key = ctx.key("k");
    ctx.store.put(&key, Bytes::from("v1")).await.unwrap();
    let v1 = ctx.store.get(&key).await.unwrap().unwrap().version;
    let mut watch = ctx
        .store
        .watch(&key, WatchOptions::default())
        .await
        .unwrap();

    let initial = next_event(&mut watch).await;
    assert_eq!(put_of(&initial), (key.as_str(), &b"v1"[..]));
    assert_eq!(initial.version(), v1);

    ctx.store.put(&key, Bytes::from("v2")).await.unwrap();
    let changed = next_event(&mut watch).await;
    assert_eq!(put_of(&changed), (key.as_str(), &b"v2"[..]));
    assert!(changed.version() > v1);

    ctx.store.delete(&key).await.unwrap();
    match next_event(&mut watch).await {
        KvEvent::Delete { key: k, version } => {
            assert_eq!(k, key);
            assert!(
                version > changed.version(),
                "a delete comes after the last put"
            );
        }
        other => panic!("expected a Delete, got {other:?}"),
    }
}

pub async fn watch_on_a_missing_key_reports_its_creation(ctx: Ctx) {
    let key = ctx.key("later");
    let mut watch = ctx
        .store
        .watch(&key, WatchOptions::default())
        .await
        .unwrap();
    assert_quiet(&mut watch, Duration::from_millis(200)).await;
    ctx.store.put(&key, Bytes::from("born")).await.unwrap();
    assert_eq!(
        put_of(&next_event(&mut watch).await),
        (key.as_str(), &b"born"[..])
    );
}

pub async fn after_yields_only_later_changes(ctx: Ctx) {
    let key = ctx.key("k");
    ctx.store.put(&key, Bytes::from("old")).await.unwrap();
    let v_old = ctx.store.get(&key).await.unwrap().unwrap().version;
    ctx.store.put(&key, Bytes::from("new")).await.unwrap();

    // Resuming after the old version: the change since is delivered, not the initial state.
    let mut watch = ctx
        .store
        .watch(&key, WatchOptions::after(v_old))
        .await
        .unwrap();
    let event = next_event(&mut watch).await;
    assert_eq!(put_of(&event), (key.as_str(), &b"new"[..]));
    assert!(event.version() > v_old);

    // Resuming after the latest version: nothing until the next change.
    let latest = event.version();
    let mut quiet = ctx
        .store
        .watch(&key, WatchOptions::after(latest))
        .await
        .unwrap();
    assert_quiet(&mut quiet, Duration::from_millis(200)).await;
    ctx.store.put(&key, Bytes::from("newer")).await.unwrap();
    let event = next_event(&mut quiet).await;
    assert_eq!(put_of(&event), (key.as_str(), &b"newer"[..]));
    assert!(event.version() > latest);

    // Range watches resume the same way.
    let range_prefix = ctx.key("");
    let mut range = ctx
        .store
        .watch_range(&range_prefix, WatchOptions::after(latest))
        .await
        .unwrap();
    assert_eq!(
        put_of(&next_event(&mut range).await),
        (key.as_str(), &b"newer"[..])
    );
}

pub async fn range_watch_reports_exactly_what_changed(ctx: Ctx) {
    let dir = ctx.key("dir/");
    for name in ["dir/b", "dir/a", "dir/c"] {
        ctx.store
            .put(&ctx.key(name), Bytes::from(name))
            .await
            .unwrap();
    }
    ctx.store
        .put(&ctx.key("dirt"), Bytes::from("outside"))
        .await
        .unwrap();
    let mut watch = ctx
        .store
        .watch_range(&dir, WatchOptions::default())
        .await
        .unwrap();

    // Initial state: every key under the prefix, in key order.
    let mut initial = Vec::new();
    for _ in 0..3 {
        initial.push(put_of(&next_event(&mut watch).await).0.to_owned());
    }
    assert_eq!(
        initial,
        [ctx.key("dir/a"), ctx.key("dir/b"), ctx.key("dir/c")]
    );

    // A change outside the prefix is not reported; each change inside is, once.
    ctx.store
        .put(&ctx.key("dirt"), Bytes::from("still outside"))
        .await
        .unwrap();
    ctx.store
        .put(&ctx.key("dir/b"), Bytes::from("b2"))
        .await
        .unwrap();
    assert_eq!(
        put_of(&next_event(&mut watch).await),
        (ctx.key("dir/b").as_str(), &b"b2"[..])
    );
    ctx.store.delete(&ctx.key("dir/a")).await.unwrap();
    match next_event(&mut watch).await {
        KvEvent::Delete { key, .. } => assert_eq!(key, ctx.key("dir/a")),
        other => panic!("expected the delete of dir/a, got {other:?}"),
    }
    ctx.store
        .put(&ctx.key("dir/new"), Bytes::from("n"))
        .await
        .unwrap();
    assert_eq!(put_of(&next_event(&mut watch).await).0, ctx.key("dir/new"));
    assert_quiet(&mut watch, Duration::from_millis(300)).await;
}

pub async fn events_come_in_version_order(ctx: Ctx) {
    let prefix = ctx.key("burst/");
    let mut watch = ctx
        .store
        .watch_range(&prefix, WatchOptions::default())
        .await
        .unwrap();
    const N: usize = 30;
    for i in 0..N {
        let key = format!("{prefix}{}", i % 4);
        ctx.store
            .put(&key, Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    let final_state: BTreeMap<String, Bytes> = ctx
        .store
        .get_range(&prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.key, p.value))
        .collect();
    let mut seen = BTreeMap::new();
    let events = events_until(&mut watch, |events| {
        if let Some(KvEvent::Put(p)) = events.last() {
            seen.insert(p.key.clone(), p.value.clone());
        }
        seen == final_state
    })
    .await;
    let versions: Vec<(u64, &str)> = events
        .iter()
        .map(|e| (e.version(), e.key().trim_start_matches(&prefix)))
        .collect();
    for pair in versions.windows(2) {
        assert!(
            pair[0].0 < pair[1].0,
            "out of order or repeated at {pair:?} in {versions:?}"
        );
    }
    if !ctx.traits.coalesces_changes {
        assert_eq!(events.len(), N, "every change is delivered");
    }
}

pub async fn cancel_watch_ends_only_that_key(ctx: Ctx) {
    let (a, b) = (ctx.key("a"), ctx.key("b"));
    let mut a1 = ctx.store.watch(&a, WatchOptions::default()).await.unwrap();
    let mut a2 = ctx.store.watch(&a, WatchOptions::default()).await.unwrap();
    let mut on_b = ctx.store.watch(&b, WatchOptions::default()).await.unwrap();
    let mut range_a = ctx
        .store
        .watch_range(&a, WatchOptions::default())
        .await
        .unwrap();

    assert_eq!(ctx.store.cancel_watch(&a), 2);
    assert_ended(&mut a1).await;
    assert_ended(&mut a2).await;
    assert_eq!(ctx.store.cancel_watch(&a), 0, "nothing left to cancel");

    // The others are untouched and still deliver.
    ctx.store.put(&a, Bytes::from("x")).await.unwrap();
    ctx.store.put(&b, Bytes::from("y")).await.unwrap();
    assert_eq!(put_of(&next_event(&mut range_a).await).0, a);
    assert_eq!(put_of(&next_event(&mut on_b).await).0, b);
}

pub async fn cancel_watch_range_ends_only_that_prefix(ctx: Ctx) {
    let (p, q) = (ctx.key("p/"), ctx.key("q/"));
    let mut p1 = ctx
        .store
        .watch_range(&p, WatchOptions::default())
        .await
        .unwrap();
    let mut p2 = ctx
        .store
        .watch_range(&p, WatchOptions::default())
        .await
        .unwrap();
    let mut on_q = ctx
        .store
        .watch_range(&q, WatchOptions::default())
        .await
        .unwrap();
    let mut key_watch = ctx.store.watch(&p, WatchOptions::default()).await.unwrap();

    assert_eq!(ctx.store.cancel_watch_range(&p), 2);
    assert_ended(&mut p1).await;
    assert_ended(&mut p2).await;
    assert_eq!(ctx.store.cancel_watch_range(&p), 0);

    ctx.store
        .put(&p, Bytes::from("key named like the prefix"))
        .await
        .unwrap();
    ctx.store
        .put(&ctx.key("q/1"), Bytes::from("y"))
        .await
        .unwrap();
    assert_eq!(put_of(&next_event(&mut key_watch).await).0, p);
    assert_eq!(put_of(&next_event(&mut on_q).await).0, ctx.key("q/1"));
}

pub async fn ttl_expiry_is_a_delete_event(ctx: Ctx) {
    let key = ctx.key("ttl");
    let ttl = ctx.traits.min_ttl;
    ctx.store
        .put_with(&key, Bytes::from("t"), PutOptions::ttl(ttl))
        .await
        .unwrap();
    let mut watch = ctx
        .store
        .watch(&key, WatchOptions::default())
        .await
        .unwrap();
    assert_eq!(put_of(&next_event(&mut watch).await).0, key);
    match next_event(&mut watch).await {
        KvEvent::Delete { key: k, .. } => assert_eq!(k, key),
        other => panic!("expected the expiry's Delete, got {other:?}"),
    }
}

/// A watch after a version the store has not reached yet waits for it
/// alone: another watch of the same store sees its writes at once.
pub async fn a_watch_ahead_of_the_store_holds_back_no_other(ctx: Ctx) {
    let (ahead, live) = (ctx.key("ahead/"), ctx.key("live/"));
    ctx.store
        .put(&ctx.key("now"), Bytes::from("x"))
        .await
        .unwrap();
    let now = ctx
        .store
        .get(&ctx.key("now"))
        .await
        .unwrap()
        .unwrap()
        .version;
    let mut waiting = ctx
        .store
        .watch_range(&ahead, WatchOptions::after(now + 1_000_000))
        .await
        .unwrap();
    let reading = tokio::spawn(async move { waiting.next().await.map(|e| e.map(|e| e.version())) });
    let mut watch = ctx
        .store
        .watch_range(&live, WatchOptions::default())
        .await
        .unwrap();
    ctx.other
        .put(&format!("{live}k"), Bytes::from("1"))
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(5), watch.next()).await {
        Ok(Some(Ok(KvEvent::Put(pair)))) => assert_eq!(pair.value, "1"),
        other => panic!("the live watch saw nothing of its write: {other:?}"),
    }
    assert!(!reading.is_finished(), "the watch ahead yielded something");
    reading.abort();
}
