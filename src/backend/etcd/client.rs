//! etcd's KV, lease and auth calls as typed calls, over the store's
//! transport: a token is fetched (once, then shared) when the store has
//! credentials, and a call etcd refuses for an invalid token is made again
//! once with a new one.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use super::auth::Credentials;
use super::keys::prefix_end;
use super::refusal::{self, Refusal, code};
use super::transport::{Reply, Token, Transport};
use super::wire::{self, bytes};
use crate::{Error, KvPair, Result};

/// A key or a prefix, as a range.
pub(super) fn range_of(key: &str, prefix: bool) -> (bytes::Bytes, Option<bytes::Bytes>) {
    if prefix {
        (
            bytes(if key.is_empty() { "\0" } else { key }),
            Some(bytes(prefix_end(key.as_bytes()))),
        )
    } else {
        (bytes(key), None)
    }
}

#[derive(Debug)]
pub(super) struct EtcdClient {
    pub(super) transport: Box<dyn Transport>,
    credentials: Option<Credentials>,
}

impl EtcdClient {
    pub(super) fn new(transport: Box<dyn Transport>, credentials: Option<Credentials>) -> Self {
        EtcdClient {
            transport,
            credentials,
        }
    }

    /// The token every call carries, if the store has credentials
    /// (authenticating first when there is none yet).
    pub(super) async fn token(&self) -> Result<Token> {
        let Some(credentials) = &self.credentials else {
            return Ok(None);
        };
        let authenticate = |request| async move {
            self.transport
                .authenticate(&request)
                .await?
                .map_err(|refusal| refusal.error)
        };
        Ok(Some(credentials.token(authenticate).await?))
    }

    /// After etcd called the token invalid: the next call authenticates again.
    pub(super) fn forget_token(&self) {
        if let Some(credentials) = &self.credentials {
            credentials.forget();
        }
    }

    /// Makes a call with the token, once more with a new token if etcd
    /// says the first is no longer valid; what etcd refused comes back as a
    /// [`Refusal`], for callers that expect some refusals.
    pub(super) async fn call_checked<R, F, Fut>(&self, call: F) -> Reply<R>
    where
        F: Fn(Token) -> Fut,
        Fut: Future<Output = Reply<R>>,
    {
        match call(self.token().await?).await? {
            Err(refusal) if self.credentials.is_some() && refusal.invalid_token => {
                tracing::debug!("etcd auth token expired; authenticating again");
                self.forget_token();
                call(self.token().await?).await
            }
            other => Ok(other),
        }
    }

    /// Like [`EtcdClient::call_checked`], a refusal as the error it means.
    pub(super) async fn call<R, F, Fut>(&self, call: F) -> Result<R>
    where
        F: Fn(Token) -> Fut,
        Fut: Future<Output = Reply<R>>,
    {
        self.call_checked(call)
            .await?
            .map_err(|refusal: Refusal| refusal.error)
    }

    /// A read of a key or prefix at `revision` (0: the latest).
    fn range_request(key: &str, prefix: bool, revision: i64) -> wire::RangeRequest {
        let (key, range_end) = range_of(key, prefix);
        wire::RangeRequest {
            key,
            range_end,
            revision,
            ..wire::RangeRequest::default()
        }
    }

    /// The pairs of a key or prefix (sorted by key), and the revision read at.
    pub(super) async fn range(
        &self,
        key: &str,
        prefix: bool,
        revision: i64,
    ) -> Result<(Vec<KvPair>, i64)> {
        let request = Self::range_request(key, prefix, revision);
        let reply = self
            .call(|token| self.transport.range(&request, token))
            .await?;
        Ok((pairs(reply.kvs)?, reply.header.revision))
    }

    /// Like [`EtcdClient::range`] at `revision`, which etcd may have
    /// compacted away or not have reached yet.
    pub(super) async fn range_at(&self, key: &str, prefix: bool, revision: i64) -> Result<RangeAt> {
        let request = Self::range_request(key, prefix, revision);
        let reply = self
            .call_checked(|token| self.transport.range(&request, token))
            .await?;
        match reply {
            Ok(reply) => Ok(RangeAt::Read(pairs(reply.kvs)?)),
            Err(refusal) if refusal.is_compacted() => Ok(RangeAt::Compacted),
            Err(refusal) if refusal.is_future_revision() => Ok(RangeAt::Future),
            Err(refusal) => Err(refusal.error),
        }
    }

    /// The raw entry of one key (with its lease and create revision), and
    /// the revision read at.
    pub(super) async fn range_raw(&self, key: &str) -> Result<(Vec<wire::KeyValue>, i64)> {
        let request = Self::range_request(key, false, 0);
        let reply = self
            .call(|token| self.transport.range(&request, token))
            .await?;
        Ok((reply.kvs, reply.header.revision))
    }

    /// Writes `key` with `lease` (0: none); with `prev_kv`, the reply names
    /// the value it replaced.
    async fn put_reply(
        &self,
        key: &str,
        value: &Bytes,
        lease: i64,
        prev_kv: bool,
    ) -> Result<wire::PutResponse> {
        let request = wire::PutRequest {
            key: bytes(key),
            // Shared, not copied: the transports encode from it.
            value: value.clone(),
            lease,
            prev_kv,
        };
        self.call(|token| self.transport.put(&request, token))
            .await
            .map_err(|e| refusal::with_value_size(e, key, value.len()))
    }

    /// Writes `key` with `lease` (0: none). With `prev_kv`, returns the
    /// lease the replaced value had (0: none, or no value).
    pub(super) async fn put(
        &self,
        key: &str,
        value: &Bytes,
        lease: i64,
        prev_kv: bool,
    ) -> Result<i64> {
        let reply = self.put_reply(key, value, lease, prev_kv).await?;
        Ok(reply.prev_kv.map_or(0, |kv| kv.lease))
    }

    /// Writes `key` with `lease`; returns the revision of the write.
    pub(super) async fn put_revision(&self, key: &str, value: &Bytes, lease: i64) -> Result<i64> {
        let reply = self.put_reply(key, value, lease, false).await?;
        Ok(reply.header.revision)
    }

    /// Deletes a key or every key under a prefix. With `prev_kv`, returns
    /// the leases the deleted values had.
    pub(super) async fn delete(&self, key: &str, prefix: bool, prev_kv: bool) -> Result<Vec<i64>> {
        let (key, range_end) = range_of(key, prefix);
        let request = wire::DeleteRangeRequest {
            key,
            range_end,
            prev_kv,
        };
        let reply = self
            .call(|token| self.transport.delete_range(&request, token))
            .await?;
        Ok(leases_of(&reply.prev_kvs))
    }

    /// Runs `request`: whether its comparisons held, and the leases of the
    /// values its writes replaced or deleted (where they asked for them).
    pub(super) async fn txn(&self, request: &wire::TxnRequest) -> Result<TxnOutcome> {
        let reply = self
            .call(|token| self.transport.txn(request, token))
            .await?;
        let mut replaced_leases = Vec::new();
        let mut ranges = Vec::new();
        for response in reply.responses {
            if let Some(range) = response.response_range {
                ranges.push(range);
                continue;
            }
            if let Some(put) = &response.response_put {
                replaced_leases.extend(put.prev_kv.iter().map(|kv| kv.lease).filter(|l| *l != 0));
            }
            if let Some(delete) = &response.response_delete_range {
                replaced_leases.extend(leases_of(&delete.prev_kvs));
            }
        }
        Ok(TxnOutcome {
            succeeded: reply.succeeded,
            revision: reply.header.revision,
            replaced_leases,
            ranges,
        })
    }

    /// Asks for the member's status (authenticating first, when the store
    /// has credentials): any answer means it is up.
    pub(super) async fn check_reachable(&self) -> Result<()> {
        self.call(|token| self.transport.status(token)).await
    }

    /// Grants a lease of at least `ttl` (whole seconds, rounded up; etcd
    /// itself raises TTLs below its minimum, about 2 s).
    pub(super) async fn grant_lease(&self, ttl: Duration) -> Result<i64> {
        let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let request = wire::LeaseGrantRequest {
            ttl: i64::try_from(seconds.max(1)).unwrap_or(i64::MAX),
        };
        let reply = self
            .call(|token| self.transport.lease_grant(&request, token))
            .await?;
        if reply.id == 0 {
            return Err(Error::malformed("etcd granted lease 0"));
        }
        Ok(reply.id)
    }

    /// Revokes a lease (deleting its keys). A lease already gone is fine.
    pub(super) async fn revoke_lease(&self, id: i64) -> Result<()> {
        let request = wire::LeaseIdRequest { id };
        let reply = self
            .call_checked(|token| self.transport.lease_revoke(&request, token))
            .await?;
        match reply {
            Ok(_) => Ok(()),
            Err(refusal) if refusal.code == code::NOT_FOUND => Ok(()),
            Err(refusal) => Err(refusal.error),
        }
    }

    /// One keep-alive of a lease; `Ok(false)` when it has expired or is unknown.
    pub(super) async fn keep_alive(&self, id: i64) -> Result<bool> {
        let request = wire::LeaseIdRequest { id };
        let reply = self
            .call(|token| self.transport.lease_keep_alive(&request, token))
            .await?;
        Ok(reply.result.is_some_and(|r| r.ttl > 0))
    }
}

/// A read at a past revision.
#[derive(Debug)]
pub(super) enum RangeAt {
    Read(Vec<KvPair>),
    /// etcd compacted that revision away.
    Compacted,
    /// The revision is ahead of etcd's.
    Future,
}

/// What a txn did.
#[derive(Debug)]
pub(super) struct TxnOutcome {
    pub(super) succeeded: bool,
    /// The store's revision after it (the commit's, when it wrote).
    pub(super) revision: i64,
    /// The replies of the branch's range reads, in order.
    pub(super) ranges: Vec<wire::RangeResponse>,
    /// Leases of the values the txn's writes replaced or deleted.
    pub(super) replaced_leases: Vec<i64>,
}

/// `kvs` as pairs.
fn pairs(kvs: Vec<wire::KeyValue>) -> Result<Vec<KvPair>> {
    kvs.into_iter().map(wire::KeyValue::into_pair).collect()
}

/// The non-zero leases of `kvs`.
fn leases_of(kvs: &[wire::KeyValue]) -> Vec<i64> {
    kvs.iter().map(|kv| kv.lease).filter(|l| *l != 0).collect()
}
