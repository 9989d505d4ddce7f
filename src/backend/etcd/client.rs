//! etcd's KV and lease endpoints as typed calls.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use serde::de::DeserializeOwned;

use serde::Serialize;

use super::auth::{AuthenticateResponse, Credentials};
use super::keys::prefix_end;
use super::refusal::{self, Refusal, code};
use super::wire::{self, b64};
use crate::http::{HttpClient, HttpRequest};
use crate::{Error, KvPair, Result};

/// A key or a prefix, as a gateway range.
pub(super) fn range_of(key: &str, prefix: bool) -> (String, Option<String>) {
    if prefix {
        (
            b64(if key.is_empty() { "\0" } else { key }),
            Some(b64(prefix_end(key.as_bytes()))),
        )
    } else {
        (b64(key), None)
    }
}

#[derive(Debug)]
pub(super) struct EtcdClient {
    pub(super) http: HttpClient,
    timeout: Duration,
    credentials: Option<Credentials>,
}

impl EtcdClient {
    pub(super) fn new(
        http: HttpClient,
        timeout: Duration,
        credentials: Option<Credentials>,
    ) -> Self {
        EtcdClient {
            http,
            timeout,
            credentials,
        }
    }

    /// The headers every request carries: the auth token, if any
    /// (authenticating first when there is none yet).
    pub(super) async fn auth_headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>> {
        let Some(credentials) = &self.credentials else {
            return Ok(Vec::new());
        };
        let authenticate = |request: super::auth::AuthenticateRequest| async move {
            let body = serde_json::to_vec(&request).map_err(|e| {
                Error::InvalidArgument(format!("etcd authenticate: cannot encode: {e}"))
            })?;
            self.send::<AuthenticateResponse>(
                "/v3/auth/authenticate",
                Bytes::from(body),
                &[],
                true,
                "etcd authenticate",
            )
            .await?
            .map_err(|refusal| refusal.error)
        };
        Ok(vec![credentials.header(authenticate).await?])
    }

    /// After etcd called the token invalid: the next request authenticates again.
    pub(super) fn forget_token(&self) {
        if let Some(credentials) = &self.credentials {
            credentials.forget();
        }
    }

    /// POSTs `request` to `path` and parses the reply, authenticating again
    /// once if etcd says the token is no longer valid.
    pub(super) async fn call<Q: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        request: &Q,
        idempotent: bool,
        operation: &'static str,
    ) -> Result<R> {
        self.call_checked(path, request, idempotent, operation)
            .await?
            .map_err(|refusal| refusal.error)
    }

    /// Like [`EtcdClient::call`], but what etcd refused comes back as a
    /// [`Refusal`] with its gRPC code, for callers that expect some refusals.
    pub(super) async fn call_checked<Q: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        request: &Q,
        idempotent: bool,
        operation: &'static str,
    ) -> Result<std::result::Result<R, Refusal>> {
        let body = Bytes::from(serde_json::to_vec(request).map_err(|e| {
            Error::InvalidArgument(format!("{operation}: cannot encode the request: {e}"))
        })?);
        let headers = self.auth_headers().await?;
        match self
            .send(path, body.clone(), &headers, idempotent, operation)
            .await?
        {
            Err(refusal) if self.credentials.is_some() && refusal.invalid_token => {
                tracing::debug!("etcd auth token expired; authenticating again");
                self.forget_token();
                let headers = self.auth_headers().await?;
                self.send(path, body, &headers, idempotent, operation).await
            }
            other => Ok(other),
        }
    }

    async fn send<R: DeserializeOwned>(
        &self,
        path: &str,
        body: Bytes,
        headers: &[(HeaderName, HeaderValue)],
        idempotent: bool,
        operation: &'static str,
    ) -> Result<std::result::Result<R, Refusal>> {
        let reply = self
            .http
            .send(&HttpRequest {
                method: Method::POST,
                path,
                body,
                idempotent,
                timeout: self.timeout,
                operation,
                headers,
                long_lived: false,
            })
            .await?;
        if reply.status != StatusCode::OK {
            return Ok(Err(Refusal::of(&reply, operation)));
        }
        reply.json(operation).map(Ok)
    }

    /// The pairs of a key or prefix (sorted by key), and the revision read at.
    pub(super) async fn range(
        &self,
        key: &str,
        prefix: bool,
        revision: i64,
    ) -> Result<(Vec<KvPair>, i64)> {
        let (key, range_end) = range_of(key, prefix);
        let reply: wire::RangeResponse = self
            .call(
                "/v3/kv/range",
                &wire::RangeRequest {
                    key,
                    range_end,
                    revision,
                    ..wire::RangeRequest::default()
                },
                true,
                "etcd range",
            )
            .await?;
        let pairs = reply
            .kvs
            .into_iter()
            .map(wire::KeyValue::into_pair)
            .collect::<Result<Vec<_>>>()?;
        Ok((pairs, reply.header.revision))
    }

    /// Like [`EtcdClient::range`] at `revision`, which etcd may have
    /// compacted away or not have reached yet.
    pub(super) async fn range_at(&self, key: &str, prefix: bool, revision: i64) -> Result<RangeAt> {
        let (key, range_end) = range_of(key, prefix);
        let request = wire::RangeRequest {
            key,
            range_end,
            revision,
            ..wire::RangeRequest::default()
        };
        let reply = self
            .call_checked::<_, wire::RangeResponse>("/v3/kv/range", &request, true, "etcd range")
            .await?;
        match reply {
            Ok(reply) => Ok(RangeAt::Read(
                reply
                    .kvs
                    .into_iter()
                    .map(wire::KeyValue::into_pair)
                    .collect::<Result<Vec<_>>>()?,
            )),
            Err(refusal) if refusal.is_compacted() => Ok(RangeAt::Compacted),
            Err(refusal) if refusal.is_future_revision() => Ok(RangeAt::Future),
            Err(refusal) => Err(refusal.error),
        }
    }

    /// The raw entry of one key (with its lease and create revision), and
    /// the revision read at.
    pub(super) async fn range_raw(&self, key: &str) -> Result<(Vec<wire::KeyValue>, i64)> {
        let (key, range_end) = range_of(key, false);
        let request = wire::RangeRequest {
            key,
            range_end,
            ..wire::RangeRequest::default()
        };
        let reply: wire::RangeResponse = self
            .call("/v3/kv/range", &request, true, "etcd range")
            .await?;
        Ok((reply.kvs, reply.header.revision))
    }

    /// Writes `key` with `lease` (0: none). With `prev_kv`, returns the
    /// lease the replaced value had (0: none, or no value).
    pub(super) async fn put(
        &self,
        key: &str,
        value: &[u8],
        lease: i64,
        prev_kv: bool,
    ) -> Result<i64> {
        let request = wire::PutRequest {
            key: b64(key),
            value: b64(value),
            lease,
            prev_kv,
        };
        let reply: wire::PutResponse = self
            .call("/v3/kv/put", &request, true, "etcd put")
            .await
            .map_err(|e| refusal::with_value_size(e, key, value.len()))?;
        Ok(reply.prev_kv.map_or(0, |kv| kv.lease))
    }

    /// Writes `key` with `lease`; returns the revision of the write.
    pub(super) async fn put_revision(&self, key: &str, value: &[u8], lease: i64) -> Result<i64> {
        let request = wire::PutRequest {
            key: b64(key),
            value: b64(value),
            lease,
            prev_kv: false,
        };
        let reply: wire::PutResponse = self
            .call("/v3/kv/put", &request, true, "etcd put")
            .await
            .map_err(|e| refusal::with_value_size(e, key, value.len()))?;
        Ok(reply.header.revision)
    }

    /// Deletes a key or every key under a prefix. With `prev_kv`, returns
    /// the leases the deleted values had.
    pub(super) async fn delete(&self, key: &str, prefix: bool, prev_kv: bool) -> Result<Vec<i64>> {
        let (key, range_end) = range_of(key, prefix);
        let reply: wire::DeleteRangeResponse = self
            .call(
                "/v3/kv/deleterange",
                &wire::DeleteRangeRequest {
                    key,
                    range_end,
                    prev_kv,
                },
                true,
                "etcd delete",
            )
            .await?;
        Ok(leases_of(&reply.prev_kvs))
    }

    /// Runs `request`: whether its comparisons held, and the leases of the
    /// values its writes replaced or deleted (where they asked for them).
    pub(super) async fn txn(&self, request: &wire::TxnRequest) -> Result<TxnOutcome> {
        let reply: wire::TxnResponse = self.call("/v3/kv/txn", request, false, "etcd txn").await?;
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
        let path = "/v3/maintenance/status";
        let status: std::result::Result<serde::de::IgnoredAny, _> = self
            .call_checked(path, &serde_json::json!({}), true, "etcd status")
            .await
            .map_err(|e| self.http.none_answered(e).not_http("an etcd server"))?;
        match status {
            Ok(_) => Ok(()),
            // Consul (or any HTTP server without etcd's gateway) has no
            // such path.
            Err(refusal) if refusal.status == 404 => Err(Error::MalformedReply {
                message: format!(
                    "connecting to etcd: the server there does not speak the etcd API (it answered 404 to {path})"
                ),
                source: None,
            }),
            Err(refusal) => Err(refusal.error),
        }
    }

    /// Grants a lease of at least `ttl` (whole seconds, rounded up; etcd
    /// itself raises TTLs below its minimum, about 2 s).
    pub(super) async fn grant_lease(&self, ttl: Duration) -> Result<i64> {
        let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let request = wire::LeaseGrantRequest {
            ttl: seconds.max(1).to_string(),
        };
        let reply: wire::LeaseGrantResponse = self
            .call("/v3/lease/grant", &request, false, "etcd lease grant")
            .await?;
        if reply.id == 0 {
            return Err(Error::malformed("etcd granted lease 0"));
        }
        Ok(reply.id)
    }

    /// Revokes a lease (deleting its keys). A lease already gone is fine.
    pub(super) async fn revoke_lease(&self, id: i64) -> Result<()> {
        let request = wire::LeaseIdRequest { id: id.to_string() };
        let reply = self
            .call_checked::<_, wire::HeaderOnly>(
                "/v3/lease/revoke",
                &request,
                true,
                "etcd lease revoke",
            )
            .await?;
        match reply {
            Ok(_) => Ok(()),
            Err(refusal) if refusal.code == code::NOT_FOUND => Ok(()),
            Err(refusal) => Err(refusal.error),
        }
    }

    /// One keep-alive of a lease; `Ok(false)` when it has expired or is unknown.
    pub(super) async fn keep_alive(&self, id: i64) -> Result<bool> {
        let request = wire::LeaseIdRequest { id: id.to_string() };
        let reply: wire::KeepAliveResponse = self
            .call(
                "/v3/lease/keepalive",
                &request,
                true,
                "etcd lease keepalive",
            )
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

/// The non-zero leases of `kvs`.
fn leases_of(kvs: &[wire::KeyValue]) -> Vec<i64> {
    kvs.iter().map(|kv| kv.lease).filter(|l| *l != 0).collect()
}
