//! `kvmesh::cache::Cache`: a local copy of a prefix, kept current.

use std::time::Duration;

use futures::StreamExt;
use kvmesh::cache::{Cache, CacheEvent};
use kvmesh::{Bytes, KvPair, Txn, TxnResult};

use super::{Ctx, EVENT_DEADLINE};

/// Waits (bounded) until the copy has applied `version`.
async fn caught_up(cache: &Cache, version: u64) {
    tokio::time::timeout(EVENT_DEADLINE, cache.wait_for(version))
        .await
        .expect("the copy catches up")
        .expect("the copy follows");
}

async fn next_change(changes: &mut kvmesh::cache::CacheChanges) -> CacheEvent {
    match tokio::time::timeout(EVENT_DEADLINE, changes.next()).await {
        Ok(Some(Ok(event))) => event,
        other => panic!("expected a change, got {other:?}"),
    }
}

async fn version_of(ctx: &Ctx, key: &str) -> u64 {
    ctx.other.get(key).await.unwrap().expect("written").version
}

pub async fn cache_opens_on_existing_keys(ctx: Ctx) {
    let prefix = ctx.key("cache/");
    for (name, value) in [("a", "1"), ("b/c", "2"), ("d", "")] {
        ctx.other
            .put(&format!("{prefix}{name}"), Bytes::from(value))
            .await
            .unwrap();
    }
    let cache = Cache::open(ctx.store.clone(), &prefix).await.unwrap();
    let stored = ctx.other.get_range(&prefix).await.unwrap();
    assert_eq!(cache.list(), stored);
    assert_eq!((cache.len(), cache.is_empty()), (3, false));
    assert_eq!(cache.get(&format!("{prefix}b/c")).unwrap().value, "2");
    assert_eq!(cache.get(&format!("{prefix}missing")), None);
    let highest = stored.iter().map(|p| p.version).max().unwrap();
    assert!(cache.version() >= highest);
    assert!(!cache.is_stale());

    let empty = Cache::open(ctx.store.clone(), &ctx.key("nothing/"))
        .await
        .unwrap();
    assert!(empty.is_empty() && empty.list().is_empty());
}

/// Four writers on another handle; once `wait_for` the last write's version
/// returns, the copy equals a read of the prefix.
pub async fn cache_converges_under_concurrent_writers(ctx: Ctx) {
    let prefix = ctx.key("cache/");
    let cache = Cache::open(ctx.store.clone(), &prefix).await.unwrap();
    let mut writers = Vec::new();
    for w in 0..4 {
        let (store, prefix) = (ctx.other.clone(), prefix.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..15 {
                let key = format!("{prefix}k{}", (w * 7 + i) % 10);
                if i % 4 == 3 {
                    store.delete(&key).await.unwrap();
                } else {
                    store
                        .put(&key, Bytes::from(format!("{w}-{i}")))
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let last = format!("{prefix}last");
    ctx.other.put(&last, Bytes::from("x")).await.unwrap();
    caught_up(&cache, version_of(&ctx, &last).await).await;
    assert_eq!(cache.list(), ctx.other.get_range(&prefix).await.unwrap());
    // A txn's writes arrive together.
    let txn = Txn::new()
        .put(&format!("{prefix}t1"), Bytes::from("1"))
        .put(&format!("{prefix}t2"), Bytes::from("2"))
        .delete(&last);
    let TxnResult::Committed { version } = ctx.other.txn(txn).await.unwrap() else {
        panic!("an unconditional txn commits");
    };
    caught_up(&cache, version).await;
    assert_eq!(cache.list(), ctx.other.get_range(&prefix).await.unwrap());
}

pub async fn cache_changes_carry_the_previous_values(ctx: Ctx) {
    let prefix = ctx.key("cache/");
    let key = format!("{prefix}k");
    let cache = Cache::open(ctx.store.clone(), &prefix).await.unwrap();
    let mut changes = cache.changes();
    let mut second = cache.clone().changes();

    ctx.other.put(&key, Bytes::from("1")).await.unwrap();
    let first = version_of(&ctx, &key).await;
    caught_up(&cache, first).await;
    ctx.other.put(&key, Bytes::from("2")).await.unwrap();
    let updated = version_of(&ctx, &key).await;
    caught_up(&cache, updated).await;
    ctx.other.delete(&key).await.unwrap();

    let v1 = KvPair {
        key: key.clone(),
        value: Bytes::from("1"),
        version: first,
    };
    let v2 = KvPair {
        key: key.clone(),
        value: Bytes::from("2"),
        version: updated,
    };
    for stream in [&mut changes, &mut second] {
        assert_eq!(
            next_change(stream).await,
            CacheEvent::Put {
                pair: v1.clone(),
                previous: None
            }
        );
        assert_eq!(
            next_change(stream).await,
            CacheEvent::Put {
                pair: v2.clone(),
                previous: Some(v1.clone())
            }
        );
        match next_change(stream).await {
            CacheEvent::Delete { previous, version } => {
                assert_eq!(previous, v2);
                assert!(version > updated);
            }
            other => panic!("expected the delete, got {other:?}"),
        }
    }
    assert!(cache.get(&key).is_none());
}

/// Keys beside the prefix (the prefix itself without its slash, a sibling
/// that shares its start) never enter the copy.
pub async fn cache_holds_only_its_prefix(ctx: Ctx) {
    let prefix = ctx.key("p/");
    let cache = Cache::open(ctx.store.clone(), &prefix).await.unwrap();
    let inside = format!("{prefix}in");
    for outside in [ctx.key("p"), ctx.key("p0"), ctx.key("q/in")] {
        ctx.other.put(&outside, Bytes::from("x")).await.unwrap();
    }
    ctx.other.put(&inside, Bytes::from("1")).await.unwrap();
    caught_up(&cache, version_of(&ctx, &inside).await).await;
    let keys: Vec<String> = cache.list().into_iter().map(|p| p.key).collect();
    assert_eq!(keys, [inside]);
}

/// Clones share one copy; the copy goes on while any clone lives.
pub async fn cache_clones_share_one_copy(ctx: Ctx) {
    let prefix = ctx.key("cache/");
    let cache = Cache::open(ctx.store.clone(), &prefix).await.unwrap();
    let clone = cache.clone();
    drop(cache);
    let key = format!("{prefix}k");
    ctx.other.put(&key, Bytes::from("1")).await.unwrap();
    caught_up(&clone, version_of(&ctx, &key).await).await;
    assert_eq!(clone.get(&key).unwrap().value, "1");
    // Dropping the last clone ends its subscribers' streams.
    let mut changes = clone.changes();
    drop(clone);
    let ended = tokio::time::timeout(Duration::from_secs(10), changes.next()).await;
    assert!(matches!(ended, Ok(None)), "{ended:?}");
}

/// `Discovery::cache`: the members from memory, current after each change.
pub async fn discovery_members_from_a_cache(ctx: Ctx) {
    use kvmesh::discovery::{Discovery, Node};
    let discovery = Discovery::with_root(ctx.store.clone(), ctx.key("discovery/"));
    let ttl = Duration::from_secs(30);
    let a = Node::new("a", "10.0.0.1:1");
    let _a = discovery.register("svc", a.clone(), ttl).await.unwrap();
    let members = discovery.cache("svc").await.unwrap();
    assert_eq!(members.members().unwrap(), std::slice::from_ref(&a));
    let b = Node::new("b", "10.0.0.2:1");
    let registration_b = discovery.register("svc", b.clone(), ttl).await.unwrap();
    let written = ctx
        .other
        .get(&ctx.key("discovery/svc/b"))
        .await
        .unwrap()
        .unwrap();
    caught_up(members.cache(), written.version).await;
    assert_eq!(members.members().unwrap(), [a.clone(), b]);
    registration_b.deregister().await.unwrap();
    let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
    while members.members().unwrap().len() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "b never left the copy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(members.members().unwrap(), [a]);
}
