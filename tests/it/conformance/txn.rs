//! `Store::txn`: all or nothing, conflicts named, one version per commit,
//! limits.

use std::collections::BTreeMap;

use kvmesh::{Bytes, Error, KvEvent, Txn, TxnResult, WatchOptions};

use super::{Ctx, committed, next_event};

pub async fn all_or_nothing_with_conflicts_named(ctx: Ctx) {
    let (a, b, c) = (ctx.key("a"), ctx.key("b"), ctx.key("c"));
    let s = &ctx.store;
    s.put(&a, Bytes::from("1")).await.unwrap();
    s.put(&b, Bytes::from("1")).await.unwrap();
    let va = s.get(&a).await.unwrap().unwrap().version;
    let txn = Txn::new()
        .check(&a, Some(va))
        .check(&c, None)
        .put(&a, Bytes::from("2"))
        .delete(&b)
        .put(&c, Bytes::from("3"));
    let version = committed(s.txn(txn.clone()).await.unwrap());
    let pa = ctx.other.get(&a).await.unwrap().unwrap();
    let pc = ctx.other.get(&c).await.unwrap().unwrap();
    assert_eq!((pa.value, pc.value), (Bytes::from("2"), Bytes::from("3")));
    assert_eq!((pa.version, pc.version), (version, version), "one version");
    assert!(ctx.other.get(&b).await.unwrap().is_none());

    // The same txn again: both checks fail, in the order given, and nothing
    // is written (b stays deleted, a keeps its value).
    match s.txn(txn).await.unwrap() {
        TxnResult::Conflict { keys } => assert_eq!(keys, [a.clone(), c.clone()]),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(ctx.other.get(&b).await.unwrap().is_none());
    let conflicted = Txn::new()
        .check(&b, Some(1))
        .put(&a, Bytes::from("never"))
        .delete(&c);
    match s.txn(conflicted).await.unwrap() {
        TxnResult::Conflict { keys } => assert_eq!(keys, std::slice::from_ref(&b)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(s.get(&a).await.unwrap().unwrap().value, "2");
    assert!(s.get(&c).await.unwrap().is_some());
    // Checks alone commit without writing.
    let quiet = Txn::new().check(&a, Some(version));
    assert!(committed(s.txn(quiet).await.unwrap()) >= version);
}

/// Many tasks move units between two keys with txns: the sum never changes
/// and no move is lost.
pub async fn moves_under_contention_keep_the_sum(ctx: Ctx) {
    const TASKS: usize = 6;
    const MOVES: usize = 8;
    let dir = ctx.key("move/");
    let (x, y) = (format!("{dir}x"), format!("{dir}y"));
    ctx.store.put(&x, Bytes::from("100")).await.unwrap();
    ctx.store.put(&y, Bytes::from("0")).await.unwrap();
    let number = |b: &Bytes| -> i64 { std::str::from_utf8(b).unwrap().parse().unwrap() };
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = if task % 2 == 0 {
            ctx.store.clone()
        } else {
            ctx.other.clone()
        };
        let (dir, x, y) = (dir.clone(), x.clone(), y.clone());
        tasks.push(tokio::spawn(async move {
            let mut moved = 0;
            while moved < MOVES {
                // One range read is one snapshot: the sum is whole in it.
                let both = store.get_range(&dir).await.unwrap();
                let [px, py] = <[_; 2]>::try_from(both).expect("x and y");
                assert_eq!(number(&px.value) + number(&py.value), 100, "a torn txn");
                let txn = Txn::new()
                    .check(&x, Some(px.version))
                    .check(&y, Some(py.version))
                    .put(&x, Bytes::from((number(&px.value) - 1).to_string()))
                    .put(&y, Bytes::from((number(&py.value) + 1).to_string()));
                if let TxnResult::Committed { .. } = store.txn(txn).await.unwrap() {
                    moved += 1;
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let vx = number(&ctx.store.get(&x).await.unwrap().unwrap().value);
    let vy = number(&ctx.store.get(&y).await.unwrap().unwrap().value);
    assert_eq!(
        (vx, vy),
        (100 - (TASKS * MOVES) as i64, (TASKS * MOVES) as i64)
    );
}

/// A range watch sees a txn's writes as ordinary events sharing its version
/// (Consul may coalesce them with other changes, never split the version).
pub async fn a_txn_is_one_version_on_a_range_watch(ctx: Ctx) {
    let dir = ctx.key("dir/");
    let old = format!("{dir}old");
    ctx.store.put(&old, Bytes::from("x")).await.unwrap();
    let mut watch = ctx
        .store
        .watch_range(&dir, WatchOptions::default())
        .await
        .unwrap();
    assert!(matches!(next_event(&mut watch).await, KvEvent::Put(p) if p.key == old));
    let txn = Txn::new()
        .put(&format!("{dir}a"), Bytes::from("1"))
        .put(&format!("{dir}b"), Bytes::from("2"))
        .delete(&old);
    let version = committed(ctx.store.txn(txn).await.unwrap());
    let mut seen = BTreeMap::new();
    while seen.len() < 3 {
        let event = next_event(&mut watch).await;
        assert_eq!(event.version(), version, "{event:?}");
        seen.insert(event.key().to_owned(), matches!(event, KvEvent::Put(_)));
    }
    let expected = [
        (format!("{dir}a"), true),
        (format!("{dir}b"), true),
        (old, false),
    ];
    assert_eq!(seen, BTreeMap::from(expected));
}

pub async fn limits_and_bad_input(ctx: Ctx) {
    let s = &ctx.store;
    let invalid_key = s.txn(Txn::new().put("", Bytes::from("x"))).await;
    assert!(
        matches!(invalid_key, Err(Error::InvalidKey { .. })),
        "{invalid_key:?}"
    );
    let invalid_check = s.txn(Txn::new().check("", None)).await;
    assert!(
        matches!(invalid_check, Err(Error::InvalidKey { .. })),
        "{invalid_check:?}"
    );
    let key = ctx.key("twice");
    let twice = Txn::new().put(&key, Bytes::from("1")).delete(&key);
    assert!(matches!(s.txn(twice).await, Err(Error::InvalidArgument(_))));
    assert!(s.get(&key).await.unwrap().is_none(), "nothing was written");
    // One write over the backend's limit (or 200 where there is none).
    let count = ctx.traits.txn_limit.map_or(200, |limit| limit + 1);
    let mut big = Txn::new();
    for i in 0..count {
        big = big.put(&ctx.key(&format!("big/{i:03}")), Bytes::from("v"));
    }
    match (s.txn(big).await, ctx.traits.txn_limit) {
        (Err(Error::InvalidArgument(message)), Some(limit)) => {
            assert!(
                message.contains(&limit.to_string()),
                "names the limit: {message}"
            );
            assert!(s.get_range(&ctx.key("big/")).await.unwrap().is_empty());
        }
        (Ok(TxnResult::Committed { .. }), None) => {
            assert_eq!(s.get_range(&ctx.key("big/")).await.unwrap().len(), count);
        }
        (other, limit) => panic!("limit {limit:?}: {other:?}"),
    }
    // Exactly at the limit is fine.
    if let Some(limit) = ctx.traits.txn_limit {
        let mut full = Txn::new();
        for i in 0..limit {
            full = full.put(&ctx.key(&format!("full/{i:03}")), Bytes::from("v"));
        }
        committed(s.txn(full).await.unwrap());
        assert_eq!(s.get_range(&ctx.key("full/")).await.unwrap().len(), limit);
    }
}
