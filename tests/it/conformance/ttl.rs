//! TTLs a store cannot keep are refused before anything is written.

use std::time::Duration;

use kvmesh::{Bytes, Error, KvEvent, PutOptions, WatchOptions};

use super::{Ctx, next_event};

/// A zero TTL and one of `u64::MAX / 4` seconds are `InvalidArgument`, and
/// neither writes the key: a read and a watch see nothing of them, and the
/// next good write is the watch's next event.
pub async fn an_impossible_ttl_writes_nothing(ctx: Ctx) {
    let key = ctx.key("ttl");
    let mut watch = ctx
        .store
        .watch(&key, WatchOptions::default())
        .await
        .unwrap();
    for ttl in [Duration::ZERO, Duration::from_secs(u64::MAX / 4)] {
        let refused = ctx
            .store
            .put_with(&key, Bytes::from("never"), PutOptions::ttl(ttl))
            .await;
        assert!(
            matches!(refused, Err(Error::InvalidArgument(_))),
            "{ttl:?}: {refused:?}"
        );
        assert_eq!(
            ctx.other.get(&key).await.unwrap(),
            None,
            "{ttl:?} wrote the key"
        );
    }
    ctx.store.put(&key, Bytes::from("good")).await.unwrap();
    match next_event(&mut watch).await {
        KvEvent::Put(pair) => assert_eq!(pair.value, "good"),
        other => panic!("expected the good write first, got {other:?}"),
    }
}

/// A TTL write of a key another handle (another process) wrote with a TTL
/// takes it over: the last write wins, with its TTL, as a restarted service
/// re-registering under its old id needs.
pub async fn a_ttl_write_takes_over_another_handles_ttl_key(ctx: Ctx) {
    let key = ctx.key("ttl");
    let ttl = PutOptions::ttl(Duration::from_secs(30));
    ctx.other
        .put_with(&key, Bytes::from("first"), ttl.clone())
        .await
        .unwrap();
    ctx.store
        .put_with(&key, Bytes::from("second"), ttl.clone())
        .await
        .unwrap();
    assert_eq!(ctx.other.get(&key).await.unwrap().unwrap().value, "second");
    ctx.other
        .put_with(&key, Bytes::from("third"), ttl)
        .await
        .unwrap();
    assert_eq!(ctx.store.get(&key).await.unwrap().unwrap().value, "third");
    ctx.store.delete(&key).await.unwrap();
    assert_eq!(ctx.other.get(&key).await.unwrap(), None);
}
