//! `Txn::check_held`: writes only the lock's holder can make, checked by the
//! store in the same atomic step as the writes.

use std::time::Duration;

use kvmesh::election::Election;
use kvmesh::{Bytes, Txn, TxnResult};

use super::{Ctx, committed, conflict, try_acquire_soon};

/// The holder writes; after release the same prepared txn writes nothing.
pub async fn only_the_holder_writes(ctx: Ctx) {
    let (lock_key, data) = (ctx.key("lock"), ctx.key("data"));
    let lock = ctx
        .store
        .acquire(&lock_key, Bytes::from("me"))
        .await
        .unwrap();
    let write = |value: &'static str| Txn::new().check_held(&lock).put(&data, Bytes::from(value));
    let version = committed(ctx.store.txn(write("1")).await.unwrap());
    let written = ctx.other.get(&data).await.unwrap().unwrap();
    assert_eq!(
        (written.value, written.version),
        (Bytes::from("1"), version)
    );
    // Sent through the other handle too: the check is the store's, not the handle's.
    committed(ctx.other.txn(write("2")).await.unwrap());
    let stale = write("stale");
    let stale_delete = Txn::new().check_held(&lock).delete(&data);
    lock.release().await.unwrap();
    assert_eq!(
        conflict(ctx.store.txn(stale.clone()).await.unwrap()),
        [lock_key.as_str()]
    );
    assert_eq!(
        conflict(ctx.other.txn(stale_delete).await.unwrap()),
        [lock_key.as_str()]
    );
    assert_eq!(ctx.other.get(&data).await.unwrap().unwrap().value, "2");
    // Still refused once the lock is free, and once someone else holds it.
    let next = try_acquire_soon(&ctx.other, &ctx, &lock_key).await;
    assert_eq!(
        conflict(ctx.store.txn(stale).await.unwrap()),
        [lock_key.as_str()]
    );
    assert_eq!(ctx.other.get(&data).await.unwrap().unwrap().value, "2");
    // The new holder writes.
    let ours = Txn::new().check_held(&next).put(&data, Bytes::from("3"));
    committed(ctx.other.txn(ours).await.unwrap());
    next.release().await.unwrap();
}

/// A lock given up through `Store::release` (by session, from another
/// handle) or by dropping its handle guards nothing any more.
pub async fn a_lock_released_elsewhere_guards_nothing(ctx: Ctx) {
    let (lock_key, data) = (ctx.key("lock"), ctx.key("data"));
    let lock = ctx
        .store
        .acquire(&lock_key, Bytes::from("me"))
        .await
        .unwrap();
    let write = Txn::new().check_held(&lock).put(&data, Bytes::from("x"));
    ctx.other.release(lock.session()).await.unwrap();
    assert_eq!(
        conflict(ctx.store.txn(write).await.unwrap()),
        [lock_key.as_str()]
    );
    drop(lock);

    let dropped = try_acquire_soon(&ctx.other, &ctx, &lock_key).await;
    let write = Txn::new().check_held(&dropped).put(&data, Bytes::from("y"));
    drop(dropped); // released in the background
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match ctx.store.txn(write.clone()).await.unwrap() {
            TxnResult::Conflict { keys } => {
                assert_eq!(keys, [lock_key.as_str()]);
                break;
            }
            // The background release may not have reached the store yet;
            // the write stays the holder's until it does.
            TxnResult::Committed { .. } => {}
            other => panic!("{other:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a dropped lock still guards writes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A lock check combines with version checks; a conflict names every
/// failed check, the version checks first.
pub async fn a_lock_check_combines_with_version_checks(ctx: Ctx) {
    let (lock_key, a, b) = (ctx.key("lock"), ctx.key("a"), ctx.key("b"));
    ctx.store.put(&a, Bytes::from("1")).await.unwrap();
    let va = ctx.store.get(&a).await.unwrap().unwrap().version;
    let lock = ctx
        .store
        .acquire(&lock_key, Bytes::from("me"))
        .await
        .unwrap();
    let stale_a = Txn::new()
        .check_held(&lock)
        .check(&a, Some(va + 1_000))
        .put(&b, Bytes::from("x"));
    assert_eq!(
        conflict(ctx.store.txn(stale_a.clone()).await.unwrap()),
        [a.as_str()]
    );
    let fresh = Txn::new()
        .check(&a, Some(va))
        .check_held(&lock)
        .check(&b, None)
        .put(&a, Bytes::from("2"))
        .delete(&b);
    let version = committed(ctx.store.txn(fresh).await.unwrap());
    assert_eq!(ctx.other.get(&a).await.unwrap().unwrap().version, version);
    // The lock's own key may be checked and guarded in one txn: named once.
    let lock_version = ctx.store.get(&lock_key).await.unwrap().unwrap().version;
    let both = Txn::new()
        .check(&lock_key, Some(lock_version))
        .check_held(&lock);
    committed(ctx.store.txn(both.clone()).await.unwrap());
    lock.release().await.unwrap();
    assert_eq!(
        conflict(ctx.store.txn(stale_a).await.unwrap()),
        [a.as_str(), lock_key.as_str()]
    );
    assert_eq!(
        conflict(ctx.store.txn(both).await.unwrap()),
        [lock_key.as_str()]
    );
    assert!(
        ctx.other.get(&b).await.unwrap().is_none(),
        "nothing written"
    );
}

/// A leader's writes through its term's lock stop when it resigns.
pub async fn a_resigned_leader_cannot_write(ctx: Ctx) {
    let election = Election::with_root(ctx.store.clone(), ctx.key("election/"));
    let config = ctx.key("config");
    let term = election
        .campaign("primary", Bytes::from("node-a"))
        .await
        .unwrap();
    let as_leader = |value: &'static str| {
        Txn::new()
            .check_held(term.lock())
            .put(&config, Bytes::from(value))
    };
    let stale = as_leader("from the old term");
    committed(ctx.store.txn(as_leader("v1")).await.unwrap());
    let lock_key = term.lock().key().to_owned();
    term.resign().await.unwrap();
    assert_eq!(conflict(ctx.store.txn(stale).await.unwrap()), [lock_key]);
    assert_eq!(ctx.other.get(&config).await.unwrap().unwrap().value, "v1");
}

/// Deleting the lock's key loses the lock (`lost()` resolves): from then on
/// its guarded writes are refused, on every backend alike.
pub async fn a_deleted_lock_key_guards_nothing(ctx: Ctx) {
    let (lock_key, data) = (ctx.key("lock"), ctx.key("data"));
    let lock = ctx
        .store
        .acquire(&lock_key, Bytes::from("me"))
        .await
        .unwrap();
    let write = Txn::new().check_held(&lock).put(&data, Bytes::from("x"));
    ctx.other.delete(&lock_key).await.unwrap();
    assert_eq!(
        conflict(ctx.store.txn(write).await.unwrap()),
        [lock_key.as_str()]
    );
    assert!(ctx.other.get(&data).await.unwrap().is_none());
    tokio::time::timeout(Duration::from_secs(20), lock.lost())
        .await
        .expect("the holder learns it lost the lock");
}
