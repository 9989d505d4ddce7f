//! Get, put, delete, ranges, CAS and TTL.

use std::collections::BTreeSet;
use std::time::Duration;

use kvmesh::{Bytes, Error, PutOptions, WatchOptions};

use super::Ctx;

pub async fn put_get_and_versions(ctx: Ctx) {
    let key = ctx.key("a");
    ctx.store.put(&key, Bytes::from("one")).await.unwrap();
    let first = ctx.store.get(&key).await.unwrap().expect("written");
    assert_eq!(first.key, key);
    assert_eq!(first.value, "one");
    assert_ne!(first.version, 0);
    assert!(ctx.store.exists(&key).await.unwrap());

    ctx.store.put(&key, Bytes::from("two")).await.unwrap();
    let second = ctx.store.get(&key).await.unwrap().expect("written");
    assert_eq!(second.value, "two");
    assert!(
        second.version > first.version,
        "versions must grow on every write"
    );

    ctx.store.delete(&key).await.unwrap();
    assert_eq!(ctx.store.get(&key).await.unwrap(), None);
    assert!(!ctx.store.exists(&key).await.unwrap());
}

pub async fn missing_keys(ctx: Ctx) {
    let key = ctx.key("never-written");
    assert_eq!(ctx.store.get(&key).await.unwrap(), None);
    assert!(!ctx.store.exists(&key).await.unwrap());
    ctx.store
        .delete(&key)
        .await
        .expect("deleting a missing key is not an error");
    assert_eq!(
        ctx.store.get_range(&ctx.key("none/")).await.unwrap(),
        vec![]
    );
}

pub async fn empty_key_is_invalid_everywhere(ctx: Ctx) {
    fn invalid<T: std::fmt::Debug>(result: kvmesh::Result<T>) {
        assert!(
            matches!(result, Err(Error::InvalidKey { .. })),
            "got {result:?}"
        );
    }
    let s = &ctx.store;
    invalid(s.put("", Bytes::from("x")).await);
    invalid(
        s.put_with(
            "",
            Bytes::from("x"),
            PutOptions::ttl(Duration::from_secs(60)),
        )
        .await,
    );
    invalid(s.get("").await);
    invalid(s.delete("").await);
    invalid(s.exists("").await);
    invalid(s.watch("", WatchOptions::default()).await);
    invalid(s.atomic_put("", Bytes::from("x"), None).await);
    invalid(s.atomic_delete("", 1).await);
    invalid(s.acquire("", Bytes::new()).await);
    invalid(s.try_acquire("", Bytes::new()).await);
    invalid(s.delete_range("").await);
}

/// Keys that every backend must store exactly as given.
pub const AWKWARD_KEYS: &[&str] = &[
    "a?recurse",
    "x#y",
    "100%",
    "%2F",
    "%zz",
    "with space",
    "ünïcødé/日本/🦀",
    "a&b=c",
    "semi;colon",
    "plus+sign",
    "dir/sub/leaf",
    "quote\"s'",
    "back\\slash",
];

pub async fn awkward_keys_round_trip(ctx: Ctx) {
    for name in AWKWARD_KEYS {
        let key = ctx.key(name);
        let value = Bytes::from(format!("value of {name}"));
        ctx.store
            .put(&key, value.clone())
            .await
            .unwrap_or_else(|e| panic!("{key:?}: {e}"));
        let pair = ctx
            .store
            .get(&key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{key:?} missing"));
        assert_eq!(pair.key, key);
        assert_eq!(pair.value, value, "{key:?}");
    }
    // Nothing else appeared: no key was turned into another path or a range.
    let listed: BTreeSet<String> = ctx
        .store
        .get_range(&ctx.prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.key)
        .collect();
    let expected: BTreeSet<String> = AWKWARD_KEYS.iter().map(|k| ctx.key(k)).collect();
    assert_eq!(listed, expected);
    for name in AWKWARD_KEYS {
        ctx.store.delete(&ctx.key(name)).await.unwrap();
    }
    assert!(ctx.store.get_range(&ctx.prefix).await.unwrap().is_empty());
}

/// Keys some backends cannot store as given: each must round-trip exactly
/// or be refused with `InvalidKey` — never stored under another key.
pub const DOUBTFUL_KEYS: &[&str] = &[
    "tab\there",
    "new\nline",
    "nul\0byte",
    "a//b",
    "a/./b",
    "a/../b",
    "..",
    "trailing ",
    "del\u{7f}",
];

pub async fn doubtful_keys_round_trip_or_are_refused(ctx: Ctx) {
    let mut stored = BTreeSet::new();
    for name in DOUBTFUL_KEYS {
        let key = ctx.key(name);
        match ctx.store.put(&key, Bytes::from(*name)).await {
            Ok(()) => {
                let pair = ctx
                    .store
                    .get(&key)
                    .await
                    .unwrap()
                    .unwrap_or_else(|| panic!("{key:?} missing"));
                assert_eq!(pair.value, *name);
                stored.insert(key);
            }
            Err(Error::InvalidKey { key: refused, .. }) => {
                assert_eq!(refused, key);
                assert!(matches!(
                    ctx.store.get(&key).await,
                    Err(Error::InvalidKey { .. }) | Ok(None)
                ));
            }
            Err(other) => panic!("{key:?}: expected success or InvalidKey, got {other}"),
        }
    }
    // Nothing landed anywhere else, in or out of this case's prefix.
    let listed: BTreeSet<String> = ctx
        .store
        .get_range(&ctx.prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.key)
        .collect();
    assert_eq!(listed, stored);
    for stray in ["b", "a/b", "kvtest/b"] {
        let escaped = ctx.store.get(stray).await.unwrap();
        assert!(
            escaped.is_none_or(
                |p| !DOUBTFUL_KEYS.contains(&std::str::from_utf8(&p.value).unwrap_or(""))
            )
        );
    }
}

pub async fn binary_empty_and_large_values(ctx: Ctx) {
    let all_bytes: Vec<u8> = (0..=255).collect();
    let large: Vec<u8> = (0..256 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    for (name, value) in [
        ("binary", Bytes::from(all_bytes)),
        ("empty", Bytes::new()),
        ("large", Bytes::from(large)),
    ] {
        let key = ctx.key(name);
        ctx.store.put(&key, value.clone()).await.unwrap();
        let pair = ctx.store.get(&key).await.unwrap().expect(name);
        assert_eq!(pair.value.len(), value.len(), "{name}");
        assert_eq!(pair.value, value, "{name}");
    }
}

pub async fn range_is_a_plain_string_prefix(ctx: Ctx) {
    for name in ["p", "p/b", "p/a", "p/a/c", "pa", "q"] {
        ctx.store
            .put(&ctx.key(name), Bytes::from(name))
            .await
            .unwrap();
    }
    let keys = |pairs: Vec<kvmesh::KvPair>| -> Vec<String> {
        pairs
            .into_iter()
            .map(|p| p.key.trim_start_matches(&ctx.prefix).to_owned())
            .collect()
    };
    assert_eq!(
        keys(ctx.store.get_range(&ctx.key("p/")).await.unwrap()),
        ["p/a", "p/a/c", "p/b"]
    );
    assert_eq!(
        keys(ctx.store.get_range(&ctx.key("p/a")).await.unwrap()),
        ["p/a", "p/a/c"]
    );
    assert_eq!(
        keys(ctx.store.get_range(&ctx.key("p")).await.unwrap()),
        ["p", "p/a", "p/a/c", "p/b", "pa"]
    );
    assert_eq!(
        keys(ctx.store.get_range(&ctx.prefix).await.unwrap()),
        ["p", "p/a", "p/a/c", "p/b", "pa", "q"]
    );
    assert!(ctx.store.get_range(&ctx.key("z")).await.unwrap().is_empty());
    let pairs = ctx.store.get_range(&ctx.key("p/a")).await.unwrap();
    assert_eq!(pairs[0].value, "p/a");
    assert_ne!(pairs[0].version, 0);
}

pub async fn delete_range_deletes_only_the_prefix(ctx: Ctx) {
    for name in ["d/1", "d/2", "d/x/3", "d", "dx"] {
        ctx.store
            .put(&ctx.key(name), Bytes::from(name))
            .await
            .unwrap();
    }
    ctx.store.delete_range(&ctx.key("d/")).await.unwrap();
    let left: Vec<String> = ctx
        .store
        .get_range(&ctx.prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.key.trim_start_matches(&ctx.prefix).to_owned())
        .collect();
    assert_eq!(left, ["d", "dx"]);
    ctx.store
        .delete_range(&ctx.key("nothing-here/"))
        .await
        .expect("an empty range is fine");
}

pub async fn cas_create_swap_and_stale(ctx: Ctx) {
    let key = ctx.key("cas");
    assert!(
        ctx.store
            .atomic_put(&key, Bytes::from("1"), None)
            .await
            .unwrap(),
        "create"
    );
    assert!(
        !ctx.store
            .atomic_put(&key, Bytes::from("x"), None)
            .await
            .unwrap(),
        "create twice"
    );
    let v1 = ctx.store.get(&key).await.unwrap().unwrap().version;
    assert!(
        ctx.store
            .atomic_put(&key, Bytes::from("2"), Some(v1))
            .await
            .unwrap(),
        "swap"
    );
    assert!(
        !ctx.store
            .atomic_put(&key, Bytes::from("3"), Some(v1))
            .await
            .unwrap(),
        "stale"
    );
    let pair = ctx.store.get(&key).await.unwrap().unwrap();
    assert_eq!(pair.value, "2");
    assert!(pair.version > v1);
    let missing = ctx.key("cas-missing");
    assert!(
        !ctx.store
            .atomic_put(&missing, Bytes::from("x"), Some(pair.version))
            .await
            .unwrap()
    );
    assert!(!ctx.store.exists(&missing).await.unwrap());
}

pub async fn atomic_delete_cases(ctx: Ctx) {
    let key = ctx.key("ad");
    assert!(
        !ctx.store.atomic_delete(&key, 1).await.unwrap(),
        "missing key"
    );
    ctx.store.put(&key, Bytes::from("x")).await.unwrap();
    let v = ctx.store.get(&key).await.unwrap().unwrap().version;
    assert!(
        !ctx.store.atomic_delete(&key, v + 1000).await.unwrap(),
        "wrong version"
    );
    assert!(ctx.store.exists(&key).await.unwrap());
    assert!(
        ctx.store.atomic_delete(&key, v).await.unwrap(),
        "right version"
    );
    assert!(!ctx.store.exists(&key).await.unwrap());
    assert!(
        !ctx.store.atomic_delete(&key, v).await.unwrap(),
        "already gone"
    );
}

pub async fn cas_counter_loses_no_update(ctx: Ctx) {
    const WRITERS: u64 = 4;
    const INCREMENTS: u64 = 25;
    let key = ctx.key("counter");
    ctx.store.put(&key, Bytes::from("0")).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let store = ctx.store.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..INCREMENTS {
                loop {
                    let pair = store.get(&key).await.unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&pair.value).unwrap().parse().unwrap();
                    // Let the other writers interleave between read and write.
                    tokio::task::yield_now().await;
                    let next = Bytes::from((n + 1).to_string());
                    if store
                        .atomic_put(&key, next, Some(pair.version))
                        .await
                        .unwrap()
                    {
                        break;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let pair = ctx.store.get(&key).await.unwrap().unwrap();
    assert_eq!(pair.value, (WRITERS * INCREMENTS).to_string());
}

pub async fn ttl_key_expires(ctx: Ctx) {
    let key = ctx.key("ttl");
    let ttl = ctx.traits.min_ttl;
    ctx.store
        .put_with(&key, Bytes::from("soon gone"), PutOptions::ttl(ttl))
        .await
        .unwrap();
    assert_eq!(
        ctx.store.get(&key).await.unwrap().unwrap().value,
        "soon gone"
    );
    wait_until_gone(&ctx, &key, ttl).await;
}

pub async fn plain_put_makes_a_ttl_key_permanent(ctx: Ctx) {
    let key = ctx.key("ttl-then-plain");
    let ttl = ctx.traits.min_ttl;
    ctx.store
        .put_with(&key, Bytes::from("temp"), PutOptions::ttl(ttl))
        .await
        .unwrap();
    ctx.store.put(&key, Bytes::from("permanent")).await.unwrap();
    tokio::time::sleep(ttl * 2 + ctx.traits.ttl_slack).await;
    assert_eq!(
        ctx.store
            .get(&key)
            .await
            .unwrap()
            .expect("permanent now")
            .value,
        "permanent"
    );
}

/// Waits up to `ttl` + the backend's slack for `key` to disappear.
pub async fn wait_until_gone(ctx: &Ctx, key: &str, ttl: Duration) {
    let deadline = tokio::time::Instant::now() + ttl + ctx.traits.ttl_slack;
    loop {
        if !ctx.store.exists(key).await.unwrap() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key:?} still exists {:?} after its TTL",
            ctx.traits.ttl_slack
        );
        tokio::time::sleep(ttl / 10).await;
    }
}

/// Concurrent TTL writes of one key through one store never conflict and
/// never delete it: the last write wins and the key lives on with its TTL.
pub async fn concurrent_ttl_writes_of_one_key_keep_it(ctx: Ctx) {
    const WRITERS: usize = 12;
    let ttl = Duration::from_secs(6).max(ctx.traits.min_ttl);
    for round in 0..3 {
        let key = ctx.key(&format!("ttl-race-{round}"));
        let writes = (0..WRITERS).map(|i| {
            let (store, key) = (ctx.store.clone(), key.clone());
            tokio::spawn(async move {
                store
                    .put_with(&key, Bytes::from(format!("v{i}")), PutOptions::ttl(ttl))
                    .await
            })
        });
        for write in futures::future::join_all(writes).await {
            write
                .unwrap()
                .expect("a TTL write through one store never conflicts");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let pair = ctx.store.get(&key).await.unwrap();
        let pair = pair.unwrap_or_else(|| panic!("round {round}: the key was deleted"));
        assert!(pair.value.starts_with(b"v"), "{pair:?}");
    }
}
