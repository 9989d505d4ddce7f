//! The lock protocol of etcd's own `concurrency.Mutex` (Go client,
//! `etcdctl lock`), on the prefix `<key>___lock/` (valkeyrie's name for a
//! lock on `<key>`), so that all of them exclude one another.
//!
//! Each contender puts `<prefix><lease id in hex>` under its lease; the
//! contender whose key has the lowest create revision holds the lock, and
//! each waiter waits for the deletion of the contender just before it (no
//! herd). The holder's create revision is the fencing token.

use std::sync::Arc;

use futures::StreamExt;

use super::Inner;
use super::client::range_of;
use super::wire::{
    Compare, PutRequest, RangeRequest, RequestOp, SortOrder, SortTarget, TxnRequest, bytes,
};
use crate::watch::WatchTarget;
use crate::{Error, KvEvent, Result, WatchOptions};

/// The mutex prefix of a lock on `key`.
pub(super) fn prefix(key: &str) -> String {
    format!("{key}___lock/")
}

/// This contender's key under `prefix`.
pub(super) fn contender(prefix: &str, lease: i64) -> String {
    format!("{prefix}{lease:x}")
}

/// The first (or last) key created under `prefix`, at or below `max_create`
/// when it is not 0.
fn by_creation(prefix: &str, order: SortOrder, max_create: i64) -> RangeRequest {
    let (key, range_end) = range_of(prefix, true);
    RangeRequest {
        key,
        range_end,
        limit: 1,
        sort_order: Some(order),
        sort_target: Some(SortTarget::Create),
        max_create_revision: max_create,
        ..RangeRequest::default()
    }
}

/// The first contender for the lock on `key`: its holder.
pub(super) async fn holder(inner: &Arc<Inner>, key: &str) -> Result<Option<crate::KvPair>> {
    let request = by_creation(&prefix(key), SortOrder::Ascend, 0);
    let client = &inner.client;
    let reply = client
        .call(|token| client.transport.range(&request, token))
        .await?;
    reply
        .kvs
        .into_iter()
        .next()
        .map(|kv| kv.into_pair())
        .transpose()
}

/// Where a contender stands.
pub(super) struct Standing {
    /// The create revision of our contender key.
    pub(super) revision: i64,
    /// True when no contender was created before us.
    pub(super) holds: bool,
}

/// Puts our contender key (unless it is there already), holding `value`
/// (etcd's own mutex leaves it empty; tools that list the contenders then
/// show who waits), and says whether it is the first.
pub(super) async fn enter(
    inner: &Arc<Inner>,
    prefix: &str,
    lease: i64,
    value: &[u8],
) -> Result<Standing> {
    let mine = bytes(contender(prefix, lease));
    let request = TxnRequest {
        compare: vec![Compare::absent(mine.clone())],
        success: vec![
            RequestOp::Put(PutRequest {
                key: mine.clone(),
                value: bytes(value),
                lease,
                prev_kv: false,
            }),
            RequestOp::Range(by_creation(prefix, SortOrder::Ascend, 0)),
        ],
        failure: vec![
            RequestOp::Range(RangeRequest {
                key: mine,
                ..RangeRequest::default()
            }),
            RequestOp::Range(by_creation(prefix, SortOrder::Ascend, 0)),
        ],
    };
    let outcome = inner.client.txn(&request).await?;
    let missing = || Error::malformed("etcd's mutex txn answered without its reads");
    let (revision, owner) = if outcome.succeeded {
        let owner = outcome.ranges.first().ok_or_else(missing)?;
        (outcome.revision, owner)
    } else {
        let ours = outcome.ranges.first().ok_or_else(missing)?;
        let revision = ours.kvs.first().ok_or_else(missing)?.create_revision;
        (revision, outcome.ranges.get(1).ok_or_else(missing)?)
    };
    let holds = owner
        .kvs
        .first()
        .is_none_or(|first| first.create_revision == revision);
    Ok(Standing { revision, holds })
}

/// Waits until every contender created before `revision` is gone, one at a
/// time: the last one before us, then the next, as etcd's own does.
pub(super) async fn wait_for_turn(inner: &Arc<Inner>, prefix: &str, revision: i64) -> Result<()> {
    loop {
        let request = by_creation(prefix, SortOrder::Descend, revision - 1);
        let client = &inner.client;
        let reply = client
            .call(|token| client.transport.range(&request, token))
            .await?;
        let Some(before) = reply.kvs.first() else {
            return Ok(());
        };
        let key = before.key_text()?;
        let after = u64::try_from(reply.header.revision).unwrap_or(0);
        let (mut changes, _) =
            super::watch::open(inner, WatchTarget::Key(key), WatchOptions::after(after)).await?;
        while let Some(event) = changes.next().await {
            if let KvEvent::Delete { .. } = event? {
                break;
            }
        }
    }
}
