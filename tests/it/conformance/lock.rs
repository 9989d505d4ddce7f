//! Locks: exclusion, waiting, cancel safety, release, loss, fencing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kvmesh::{Bytes, Error};

use super::{Ctx, try_acquire_soon};

pub async fn locks_exclude_contending_tasks(ctx: Ctx) {
    const TASKS: usize = 4;
    const ROUNDS: usize = 3;
    let key = ctx.key("lock");
    let holders = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (store, key, holders) = (ctx.store.clone(), key.clone(), holders.clone());
        tasks.push(tokio::spawn(async move {
            let mut tokens = Vec::new();
            for _ in 0..ROUNDS {
                let lock = store
                    .acquire(&key, Bytes::from(format!("task {t}")))
                    .await
                    .unwrap();
                assert_eq!(
                    holders.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two holders at once"
                );
                let value = store.get(&key).await.unwrap().unwrap().value;
                assert_eq!(value, format!("task {t}"));
                tokio::time::sleep(Duration::from_millis(5)).await;
                holders.fetch_sub(1, Ordering::SeqCst);
                tokens.push(lock.fencing_token());
                lock.release().await.unwrap();
            }
            tokens
        }));
    }
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.extend(task.await.unwrap());
    }
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(
        tokens.len(),
        TASKS * ROUNDS,
        "every hand-over gets a new fencing token"
    );
}

pub async fn waiter_wakes_after_release(ctx: Ctx) {
    let key = ctx.key("lock");
    let first = ctx.store.acquire(&key, Bytes::from("first")).await.unwrap();
    let store = ctx.store.clone();
    let waiter_key = key.clone();
    let mut waiter =
        tokio::spawn(async move { store.acquire(&waiter_key, Bytes::from("second")).await });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiter)
            .await
            .is_err(),
        "the waiter must wait while the lock is held"
    );
    let first_token = first.fencing_token();
    first.release().await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(20) + ctx.traits.release_lag, waiter)
        .await
        .expect("the waiter wakes after the release")
        .unwrap()
        .unwrap();
    assert!(
        second.fencing_token() > first_token,
        "fencing tokens grow across holders"
    );
    assert_eq!(ctx.store.get(&key).await.unwrap().unwrap().value, "second");
    second.release().await.unwrap();
}

pub async fn acquire_is_cancel_safe(ctx: Ctx) {
    let key = ctx.key("lock");
    let holder = ctx
        .store
        .acquire(&key, Bytes::from("holder"))
        .await
        .unwrap();
    // A waiter gives up: its future is dropped mid-wait.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(200),
        ctx.store.acquire(&key, Bytes::from("quitter")),
    )
    .await;
    assert!(gave_up.is_err());
    holder.release().await.unwrap();
    // Nothing of the quitter is left behind: the lock is free at once.
    let next = try_acquire_soon(&ctx.store, &ctx, &key).await;
    assert_eq!(ctx.store.get(&key).await.unwrap().unwrap().value, "next");
    next.release().await.unwrap();
}

pub async fn release_by_session_id(ctx: Ctx) {
    let key = ctx.key("lock");
    let lock = ctx.store.acquire(&key, Bytes::from("held")).await.unwrap();
    assert!(!lock.session().is_empty());
    ctx.store.release(lock.session()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), lock.lost())
        .await
        .expect("lost() resolves after release by session");
    assert!(
        !ctx.store.exists(&key).await.unwrap(),
        "release deletes the key"
    );
    let next = try_acquire_soon(&ctx.store, &ctx, &key).await;
    next.release().await.unwrap();
    match ctx.store.release("no-such-session").await {
        Err(Error::UnknownSession { session }) => assert_eq!(session, "no-such-session"),
        other => panic!("expected UnknownSession, got {other:?}"),
    }
}

pub async fn holder_value_is_readable(ctx: Ctx) {
    let key = ctx.key("lock");
    let lock = ctx.store.acquire(&key, Bytes::from("me")).await.unwrap();
    assert_eq!(lock.key(), key);
    assert_eq!(ctx.store.get(&key).await.unwrap().unwrap().value, "me");
    assert!(
        ctx.store
            .try_acquire(&key, Bytes::from("other"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        ctx.store.get(&key).await.unwrap().unwrap().value,
        "me",
        "a failed try leaves the value"
    );
    lock.release().await.unwrap();
}

pub async fn deleting_the_key_loses_the_lock(ctx: Ctx) {
    let key = ctx.key("lock");
    let lock = ctx.store.acquire(&key, Bytes::from("held")).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(100), lock.lost())
            .await
            .is_err(),
        "not lost yet"
    );
    ctx.store.delete(&key).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), lock.lost())
        .await
        .expect("lost() resolves once the key is deleted");
    let next = try_acquire_soon(&ctx.store, &ctx, &key).await;
    next.release().await.unwrap();
}

pub async fn dropping_a_lock_releases_it(ctx: Ctx) {
    let key = ctx.key("lock");
    let lock = ctx
        .store
        .acquire(&key, Bytes::from("dropped"))
        .await
        .unwrap();
    drop(lock);
    let next = try_acquire_soon(&ctx.store, &ctx, &key).await;
    next.release().await.unwrap();
}
