//! `Store::txn` on etcd: one etcd `Txn`, its compares the checks, its
//! success branch the writes, and its failure branch a read of every
//! checked key, so that a conflict names the keys whose check failed.

use std::collections::HashMap;

use super::EtcdStore;
use super::client::range_of;
use super::mutex;
use super::refusal::with_value_size;
use super::wire::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, bytes,
};
use crate::txn::{LockGuard, TxnWrite};
use crate::{Error, Result, Txn, TxnResult};

/// The contender key of the holder a lock check names (its session is the
/// lease id in decimal); a session that is no lease names no key that exists.
fn contender_of(guard: &LockGuard) -> String {
    mutex::contender(&mutex::prefix(&guard.key), lease_of(guard))
}

/// The holder's lease (its session, in decimal); 0 for a session that is
/// no lease, which no key of a lock is attached to.
fn lease_of(guard: &LockGuard) -> i64 {
    guard.session.parse().unwrap_or(0)
}

/// etcd's default `--max-txn-ops`: the most compares, and the most
/// operations in either branch, of one txn.
const MAX_TXN_OPS: usize = 128;

impl EtcdStore {
    pub(super) async fn apply_txn(&self, txn: Txn) -> Result<TxnResult> {
        txn.validate("etcd", MAX_TXN_OPS, MAX_TXN_OPS)?;
        let mut compare = Vec::new();
        for check in &txn.checks {
            let key = bytes(&check.key);
            match check.version {
                None => compare.push(Compare::absent(key)),
                // No key is at version 0: present and last written at 0
                // never holds.
                Some(0) => {
                    compare.push(Compare::present(key.clone()));
                    compare.push(Compare::modified_at(key, 0));
                }
                Some(version) => compare.push(Compare::modified_at(key, version)),
            }
        }
        // A lock is held while the holder's contender key is the one created
        // at its fencing token (it goes with the holder's lease; a key of
        // the lease's name created later belongs to a later holder), and its
        // key still carries the holder's value under that lease (a deleted
        // or overwritten key is a lost lock, as on every backend).
        let contenders: Vec<String> = txn.guards.iter().map(contender_of).collect();
        for (guard, contender) in txn.guards.iter().zip(&contenders) {
            compare.push(Compare::created_at(bytes(contender), guard.fencing_token));
            compare.push(Compare::leased_by(bytes(&guard.key), lease_of(guard)));
        }
        if compare.len() > MAX_TXN_OPS {
            return Err(Error::InvalidArgument(format!(
                "a txn on etcd takes at most {MAX_TXN_OPS} compares (a check of version 0 takes two)"
            )));
        }
        let prev_kv = self.inner.ttl_leases.any();
        let success = txn
            .writes
            .iter()
            .map(|write| match write {
                TxnWrite::Put { key, value } => RequestOp::Put(PutRequest {
                    key: bytes(key),
                    value: value.clone(),
                    lease: 0,
                    prev_kv,
                }),
                TxnWrite::Delete { key } => RequestOp::DeleteRange(DeleteRangeRequest {
                    key: bytes(key),
                    range_end: None,
                    prev_kv,
                }),
            })
            .collect();
        let checked = txn.checks.iter().map(|check| &check.key);
        let locked = txn.guards.iter().map(|guard| &guard.key);
        let failure = checked
            .chain(&contenders)
            .chain(locked)
            .map(|key| {
                let (key, range_end) = range_of(key, false);
                RequestOp::Range(RangeRequest {
                    key,
                    range_end,
                    ..RangeRequest::default()
                })
            })
            .collect();
        let request = TxnRequest {
            compare,
            success,
            failure,
        };
        let outcome = self.inner.client.txn(&request).await.map_err(|e| {
            let size = txn.writes.iter().map(|w| match w {
                TxnWrite::Put { value, .. } => value.len(),
                TxnWrite::Delete { .. } => 0,
            });
            with_value_size(e, "(a txn)", size.sum())
        })?;
        if outcome.succeeded {
            self.revoke_replaced(outcome.replaced_leases).await;
            let version = u64::try_from(outcome.revision)
                .map_err(|_| Error::malformed("etcd answered a negative revision"))?;
            return Ok(TxnResult::Committed { version });
        }
        // The failure branch read each checked key, then each lock's
        // contender key, in order.
        let mut current: HashMap<&str, Option<u64>> = HashMap::new();
        for (check, range) in txn.checks.iter().zip(&outcome.ranges) {
            let version = match range.kvs.first() {
                Some(kv) => Some(kv.version()?),
                None => None,
            };
            current.insert(&check.key, version);
        }
        let mut created: HashMap<&str, i64> = HashMap::new();
        let contender_ranges = outcome.ranges.iter().skip(txn.checks.len());
        for (contender, range) in contenders.iter().zip(contender_ranges) {
            let revision = range.kvs.first().map_or(0, |kv| kv.create_revision);
            created.insert(contender, revision);
        }
        let mut leased: HashMap<&str, i64> = HashMap::new();
        let key_ranges = outcome
            .ranges
            .iter()
            .skip(txn.checks.len() + contenders.len());
        for (guard, range) in txn.guards.iter().zip(key_ranges) {
            leased.insert(&guard.key, range.kvs.first().map_or(0, |kv| kv.lease));
        }
        let held = |guard: &LockGuard| {
            let revision = created.get(contender_of(guard).as_str()).copied();
            let contending =
                revision.and_then(|r| u64::try_from(r).ok()) == Some(guard.fencing_token);
            contending && leased.get(guard.key.as_str()) == Some(&lease_of(guard))
        };
        let keys = txn.failed_checks(|key| current.get(key).copied().flatten(), held);
        if keys.is_empty() {
            return Err(Error::malformed(
                "etcd refused a txn whose checks all hold by its own reads",
            ));
        }
        Ok(TxnResult::Conflict { keys })
    }
}
