//! `kvmesh::semaphore`, on every backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kvmesh::semaphore::Semaphore;
use kvmesh::{Bytes, Error};

use super::Ctx;

/// Many tasks on two handles take permits of a semaphore of 3: never more
/// than 3 hold at once, and every task gets its turns.
pub async fn semaphore_never_exceeds_its_limit(ctx: Ctx) {
    const LIMIT: u32 = 3;
    const TASKS: usize = 7;
    const ROUNDS: usize = 2;
    let key = ctx.key("pool");
    let holding = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = if task % 2 == 0 {
            ctx.store.clone()
        } else {
            ctx.other.clone()
        };
        let semaphore = Semaphore::new(store, &key, LIMIT);
        let (holding, most) = (holding.clone(), most.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let permit = semaphore
                    .acquire(Bytes::from(format!("task-{task}")))
                    .await
                    .unwrap();
                let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                holding.fetch_sub(1, Ordering::SeqCst);
                permit.release().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let most = most.load(Ordering::SeqCst);
    assert!(most <= LIMIT as usize, "{most} holders at once");
    assert!(most >= 2, "permits were held side by side ({most})");
    let semaphore = Semaphore::new(ctx.store.clone(), &key, LIMIT);
    assert!(semaphore.holders().await.unwrap().is_empty());
}

pub async fn semaphore_holders_try_and_drop(ctx: Ctx) {
    let key = ctx.key("pair");
    let semaphore = Semaphore::new(ctx.store.clone(), &key, 2);
    let elsewhere = Semaphore::new(ctx.other.clone(), &key, 2);
    let a = semaphore.acquire(Bytes::from("a")).await.unwrap();
    let b = elsewhere
        .try_acquire(Bytes::from("b"))
        .await
        .unwrap()
        .expect("a slot is free");
    assert_ne!(a.slot(), b.slot());
    assert!(
        elsewhere
            .try_acquire(Bytes::from("c"))
            .await
            .unwrap()
            .is_none()
    );
    let mut holders = elsewhere.holders().await.unwrap();
    holders.sort();
    assert_eq!(holders, [Bytes::from("a"), Bytes::from("b")]);
    // A dropped permit frees its slot for a waiter.
    let waiter = tokio::spawn(async move { elsewhere.acquire(Bytes::from("c")).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "every slot is held");
    drop(a);
    let c = tokio::time::timeout(ctx.traits.release_lag + Duration::from_secs(10), waiter)
        .await
        .expect("the waiter gets the dropped slot")
        .unwrap()
        .unwrap();
    assert!(!c.is_lost());
    c.release().await.unwrap();
    b.release().await.unwrap();
    let none = Semaphore::new(ctx.store.clone(), &key, 0);
    assert!(matches!(
        none.try_acquire(Bytes::new()).await,
        Err(Error::InvalidArgument(_))
    ));
    let nameless = Semaphore::new(ctx.store.clone(), "", 1);
    assert!(matches!(
        nameless.try_acquire(Bytes::new()).await,
        Err(Error::InvalidKey { .. })
    ));
}
