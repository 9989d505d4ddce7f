//! etcd's KV and lease endpoints as typed calls.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use serde::de::DeserializeOwned;

use super::auth::{AuthenticateResponse, Credentials, is_invalid_token};
use super::keys::prefix_end;
use super::plain_reply::PlainReply;
use super::plain_request::PlainRequest;
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
            self.send::<_, AuthenticateResponse>(
                "/v3/auth/authenticate",
                &request,
                &[],
                true,
                "etcd authenticate",
            )
            .await
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
    pub(super) async fn call<Q: PlainRequest, R: DeserializeOwned + PlainReply>(
        &self,
        path: &str,
        request: &Q,
        idempotent: bool,
        operation: &'static str,
    ) -> Result<R> {
        let headers = self.auth_headers().await?;
        match self
            .send(path, request, &headers, idempotent, operation)
            .await
        {
            Err(Error::PermissionDenied(message))
                if self.credentials.is_some() && is_invalid_token(0, &message) =>
            {
                tracing::debug!("etcd auth token expired; authenticating again");
                self.forget_token();
                let headers = self.auth_headers().await?;
                self.send(path, request, &headers, idempotent, operation)
                    .await
            }
            other => other,
        }
    }

    async fn send<Q: PlainRequest, R: DeserializeOwned + PlainReply>(
        &self,
        path: &str,
        request: &Q,
        headers: &[(HeaderName, HeaderValue)],
        idempotent: bool,
        operation: &'static str,
    ) -> Result<R> {
        let body = request.to_json().map_err(|e| {
            Error::InvalidArgument(format!("{operation}: cannot encode the request: {e}"))
        })?;
        let reply = self
            .http
            .send(&HttpRequest {
                method: Method::POST,
                path,
                body: Bytes::from(body),
                idempotent,
                timeout: self.timeout,
                operation,
                headers,
            })
            .await?;
        if reply.status != StatusCode::OK {
            return Err(wire::classify(&reply, operation));
        }
        wire::parse_reply(&reply, operation)
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

    /// The raw entry of one key (with its lease and create revision), and
    /// the revision read at.
    pub(super) async fn range_raw(&self, key: &str) -> Result<(Vec<wire::KeyValue>, i64)> {
        let (key, range_end) = range_of(key, false);
        let request = wire::RangeRequest {
            key,
            range_end,
            revision: 0,
        };
        let reply: wire::RangeResponse = self
            .call("/v3/kv/range", &request, true, "etcd range")
            .await?;
        Ok((reply.kvs, reply.header.revision))
    }

    /// Writes `key`; returns the revision of the write.
    pub(super) async fn put(&self, key: &str, value: &[u8], lease: i64) -> Result<i64> {
        let request = wire::PutRequest {
            key: b64(key),
            value: b64(value),
            lease,
        };
        let reply: wire::HeaderOnly = self.call("/v3/kv/put", &request, true, "etcd put").await?;
        Ok(reply.header.revision)
    }

    /// Deletes a key or every key under a prefix; returns how many.
    pub(super) async fn delete(&self, key: &str, prefix: bool) -> Result<i64> {
        let (key, range_end) = range_of(key, prefix);
        let reply: wire::DeleteRangeResponse = self
            .call(
                "/v3/kv/deleterange",
                &wire::DeleteRangeRequest { key, range_end },
                true,
                "etcd delete",
            )
            .await?;
        Ok(reply.deleted)
    }

    /// Runs `request`; true when its comparisons held.
    pub(super) async fn txn(&self, request: &wire::TxnRequest) -> Result<bool> {
        let reply: wire::TxnResponse = self.call("/v3/kv/txn", request, false, "etcd txn").await?;
        Ok(reply.succeeded)
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
            return Err(Error::MalformedReply("etcd granted lease 0".into()));
        }
        Ok(reply.id)
    }

    /// Revokes a lease (deleting its keys). A lease already gone is fine.
    pub(super) async fn revoke_lease(&self, id: i64) -> Result<()> {
        let request = wire::LeaseIdRequest { id: id.to_string() };
        match self
            .call::<_, wire::HeaderOnly>("/v3/lease/revoke", &request, true, "etcd lease revoke")
            .await
        {
            Ok(_) => Ok(()),
            Err(Error::MalformedReply(m) | Error::InvalidArgument(m))
                if m.contains("lease not found") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
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
