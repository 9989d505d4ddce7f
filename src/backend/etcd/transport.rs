//! How etcd's calls reach it: the one thing the etcd backend's two
//! transports (gRPC over HTTP/2, the v3 JSON gateway over HTTP/1.1) differ
//! in. Everything above it
//! (auth tokens, the watch hub, resuming after the last delivered revision,
//! compaction resync, leases, locks) is written once against this trait.

use std::fmt;

use async_trait::async_trait;
use hyper::header::HeaderValue;

use super::auth::{AuthenticateRequest, AuthenticateResponse};
use super::refusal::Refusal;
use super::wire::{
    DeleteRangeRequest, DeleteRangeResponse, HeaderOnly, KeepAliveResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseIdRequest, PutRequest, PutResponse, RangeRequest, RangeResponse,
    TxnRequest, TxnResponse, WatchCreateRequest, WatchResponse,
};
use crate::{Error, Result};

/// A call's reply: what etcd answered, or what it refused (with its gRPC
/// code), or `Err` when no member answered.
pub(super) type Reply<T> = Result<std::result::Result<T, Refusal>>;

/// The auth token a call carries (sensitive: never shown).
pub(super) type Token = Option<HeaderValue>;

/// etcd's calls, as one transport makes them.
#[async_trait]
pub(super) trait Transport: Send + Sync + fmt::Debug {
    async fn range(&self, request: &RangeRequest, token: Token) -> Reply<RangeResponse>;

    async fn put(&self, request: &PutRequest, token: Token) -> Reply<PutResponse>;

    async fn delete_range(
        &self,
        request: &DeleteRangeRequest,
        token: Token,
    ) -> Reply<DeleteRangeResponse>;

    async fn txn(&self, request: &TxnRequest, token: Token) -> Reply<TxnResponse>;

    async fn lease_grant(
        &self,
        request: &LeaseGrantRequest,
        token: Token,
    ) -> Reply<LeaseGrantResponse>;

    async fn lease_revoke(&self, request: &LeaseIdRequest, token: Token) -> Reply<HeaderOnly>;

    /// One keep-alive of one lease.
    async fn lease_keep_alive(
        &self,
        request: &LeaseIdRequest,
        token: Token,
    ) -> Reply<KeepAliveResponse>;

    async fn authenticate(&self, request: &AuthenticateRequest) -> Reply<AuthenticateResponse>;

    /// Asks a member for its status: any answer means it is up and speaks
    /// etcd's API; `Err` says why not (naming what answered instead).
    async fn status(&self, token: Token) -> Reply<()>;

    /// Opens a watch; its messages come from the returned channel until it
    /// is dropped. `Err` when it could not be opened (retryable or not).
    async fn watch(
        &self,
        request: &WatchCreateRequest,
        token: Token,
    ) -> Result<Box<dyn WatchChannel>>;
}

/// One message of a watch.
#[derive(Debug)]
pub(super) enum WatchMessage {
    Response(WatchResponse),
    /// etcd ended the watch with an error (its gRPC code and message).
    Error {
        code: i32,
        message: String,
    },
}

/// An open watch.
#[async_trait]
pub(super) trait WatchChannel: Send {
    /// The next message; `Ok(None)` when the server ended the watch's
    /// stream cleanly (the gateway), `Err` when the channel broke or ended
    /// otherwise (retryable errors: reconnect) or carried something that
    /// cannot be read.
    async fn next(&mut self) -> Result<Option<WatchMessage>>;
}

/// An error of a watch channel that a reconnect may cure.
pub(super) fn broken(why: impl fmt::Display) -> Error {
    Error::Unreachable {
        message: format!("etcd watch: {why}"),
        source: None,
    }
}
