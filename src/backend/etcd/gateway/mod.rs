//! The v3 JSON gateway transport (`?transport=http`): each call a JSON
//! `POST /v3/...` over HTTP/1.1 on the shared pooled client, each watch a
//! long `POST /v3/watch` stream of newline-delimited JSON ([`watch`]). It
//! works through any HTTP/1.1 proxy; it needs no gRPC.

mod watch;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use hyper::header::{AUTHORIZATION, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::auth::{AuthenticateRequest, AuthenticateResponse};
use super::refusal::Refusal;
use super::transport::{Reply, Token, Transport, WatchChannel};
use super::wire::{
    DeleteRangeRequest, DeleteRangeResponse, HeaderOnly, KeepAliveResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseIdRequest, PutRequest, PutResponse, RangeRequest, RangeResponse,
    TxnRequest, TxnResponse, WatchCreateRequest, WatchRequest,
};
use crate::http::{HttpClient, HttpRequest};
use crate::{Error, Result};

/// etcd's calls as JSON over HTTP/1.1.
#[derive(Debug)]
pub(super) struct Gateway {
    http: HttpClient,
    timeout: Duration,
}

impl Gateway {
    pub(super) fn new(http: HttpClient, timeout: Duration) -> Self {
        Gateway { http, timeout }
    }

    /// POSTs `request` to `path` and parses the reply.
    async fn post<Q: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        request: &Q,
        token: Token,
        idempotent: bool,
        operation: &'static str,
    ) -> Reply<R> {
        let body = Bytes::from(serde_json::to_vec(request).map_err(|e| {
            Error::InvalidArgument(format!("{operation}: cannot encode the request: {e}"))
        })?);
        let headers = headers(token);
        let reply = self
            .http
            .send(&HttpRequest {
                method: Method::POST,
                path,
                body,
                idempotent,
                timeout: self.timeout,
                operation,
                headers: &headers,
                long_lived: false,
            })
            .await?;
        if reply.status != StatusCode::OK {
            let refusal = Refusal::of(&reply, operation);
            if !idempotent && refusal.may_have_applied() {
                return Err(refusal.into_outcome_unknown(operation));
            }
            return Ok(Err(refusal));
        }
        reply.json(operation).map(Ok)
    }
}

/// The headers a call carries: the token, raw in `Authorization` (no
/// `Bearer`, which etcd refuses before 3.5.32).
fn headers(token: Token) -> Vec<(HeaderName, HeaderValue)> {
    token
        .map(|token| (AUTHORIZATION, token))
        .into_iter()
        .collect()
}

#[async_trait]
impl Transport for Gateway {
    async fn range(&self, request: &RangeRequest, token: Token) -> Reply<RangeResponse> {
        self.post("/v3/kv/range", request, token, true, "etcd range")
            .await
    }

    async fn put(&self, request: &PutRequest, token: Token) -> Reply<PutResponse> {
        self.post("/v3/kv/put", request, token, false, "etcd put")
            .await
    }

    async fn delete_range(
        &self,
        request: &DeleteRangeRequest,
        token: Token,
    ) -> Reply<DeleteRangeResponse> {
        self.post("/v3/kv/deleterange", request, token, false, "etcd delete")
            .await
    }

    async fn txn(&self, request: &TxnRequest, token: Token) -> Reply<TxnResponse> {
        self.post("/v3/kv/txn", request, token, false, "etcd txn")
            .await
    }

    async fn lease_grant(
        &self,
        request: &LeaseGrantRequest,
        token: Token,
    ) -> Reply<LeaseGrantResponse> {
        // Sent again, a grant leaves at most a lease nobody uses, which
        // expires at its TTL.
        self.post("/v3/lease/grant", request, token, true, "etcd lease grant")
            .await
    }

    async fn lease_revoke(&self, request: &LeaseIdRequest, token: Token) -> Reply<HeaderOnly> {
        let path = "/v3/lease/revoke";
        self.post(path, request, token, true, "etcd lease revoke")
            .await
    }

    async fn lease_keep_alive(
        &self,
        request: &LeaseIdRequest,
        token: Token,
    ) -> Reply<KeepAliveResponse> {
        let path = "/v3/lease/keepalive";
        self.post(path, request, token, true, "etcd lease keepalive")
            .await
    }

    async fn authenticate(&self, request: &AuthenticateRequest) -> Reply<AuthenticateResponse> {
        let path = "/v3/auth/authenticate";
        self.post(path, request, None, true, "etcd authenticate")
            .await
    }

    async fn status(&self, token: Token) -> Reply<()> {
        let path = "/v3/maintenance/status";
        let status: std::result::Result<serde::de::IgnoredAny, _> = self
            .post(path, &serde_json::json!({}), token, true, "etcd status")
            .await
            .map_err(|e| self.http.none_answered(e).not_http("an etcd server"))?;
        match status {
            Ok(_) => Ok(Ok(())),
            // Consul (or any HTTP server without etcd's gateway) has no
            // such path.
            Err(refusal) if refusal.status == 404 => Err(Error::MalformedReply {
                message: format!(
                    "connecting to etcd: the server there does not speak the etcd API (it answered 404 to {path})"
                ),
                source: None,
            }),
            Err(refusal) => Ok(Err(refusal)),
        }
    }

    async fn watch(
        &self,
        request: &WatchCreateRequest,
        token: Token,
    ) -> Result<Box<dyn WatchChannel>> {
        let body = serde_json::to_vec(&WatchRequest {
            create_request: request,
        })
        .map_err(|e| Error::InvalidArgument(format!("cannot encode a watch request: {e}")))?;
        let mut headers = headers(token);
        // A member without a leader cancels the watch instead of leaving it
        // hanging.
        headers.push((
            HeaderName::from_static("grpc-metadata-hasleader"),
            HeaderValue::from_static("true"),
        ));
        let response = self
            .http
            .open_stream(&HttpRequest {
                method: Method::POST,
                path: "/v3/watch",
                body: Bytes::from(body),
                idempotent: true,
                timeout: self.timeout,
                operation: "etcd watch",
                headers: &headers,
                long_lived: true,
            })
            .await?;
        if response.status() != StatusCode::OK {
            return Err(watch::refused(response).await);
        }
        Ok(Box::new(watch::GatewayWatch::new(response.into_body())))
    }
}
