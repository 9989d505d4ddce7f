//! The gRPC transport (`?transport=grpc`): etcd's own API, with tonic over
//! one HTTP/2 connection per member that every call and watch of the store
//! shares, and messages written by hand with prost ([`proto`]; no protoc,
//! no build step). Calls start at the member that answered last and fail
//! over to the next when one cannot be reached (and, for reads and other
//! calls that may run twice, when it answers `Unavailable`).

mod convert;
mod keep_alive;
mod proto;
mod watch;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument;

use super::auth::{AuthenticateRequest, AuthenticateResponse};
use super::refusal::Refusal;
use super::transport::{Reply, Token, Transport, WatchChannel};
use super::wire;
use crate::{Error, Result};

/// The largest reply taken: etcd's own client's limit (`math.MaxInt32`).
const MAX_REPLY: usize = i32::MAX as usize;

/// How often an idle connection is pinged, and how long a ping may go
/// unanswered before the connection counts as broken.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// One member: its address (for errors) and its connection.
#[derive(Debug)]
struct Member {
    address: String,
    channel: Channel,
}

/// etcd's calls over gRPC.
#[derive(Debug)]
pub(super) struct Grpc {
    members: Vec<Member>,
    /// The member that answered last.
    preferred: AtomicUsize,
    timeout: Duration,
}

impl Grpc {
    /// A transport to `endpoints` (`host:port` each); connects on first use.
    pub(super) fn new(endpoints: &[&str], timeout: Duration) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(Error::InvalidArgument(
                "at least one endpoint is needed".into(),
            ));
        }
        let members = endpoints
            .iter()
            .map(|address| {
                // The same checks as every HTTP endpoint: host:port only.
                crate::http::Endpoint::parse(address, false)?;
                let endpoint = Endpoint::from_shared(format!("http://{address}"))
                    .map_err(|e| Error::InvalidArgument(format!("endpoint {address:?}: {e}")))?
                    .connect_timeout(timeout)
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(KEEP_ALIVE)
                    .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
                    .keep_alive_while_idle(true);
                Ok(Member {
                    address: (*address).to_owned(),
                    channel: endpoint.connect_lazy(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Grpc {
            members,
            preferred: AtomicUsize::new(0),
            timeout,
        })
    }

    /// The members in the order a call tries them: the preferred first.
    fn in_order(&self) -> impl Iterator<Item = (usize, &Member)> {
        let start = self.preferred.load(Ordering::Relaxed);
        let count = self.members.len();
        (0..count).map(move |i| {
            let index = (start + i) % count;
            (index, &self.members[index])
        })
    }

    /// A gRPC client on `channel`, taking replies of any size.
    fn client(channel: &Channel) -> tonic::client::Grpc<Channel> {
        tonic::client::Grpc::new(channel.clone())
            .max_decoding_message_size(MAX_REPLY)
            .max_encoding_message_size(MAX_REPLY)
    }

    /// One unary call of `path`.
    async fn unary<Q, R>(
        &self,
        path: &'static str,
        request: Q,
        token: Token,
        idempotent: bool,
        operation: &'static str,
    ) -> Reply<R>
    where
        Q: prost::Message + Clone + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        self.on_members(idempotent, operation, |channel| {
            let call = request_with(request.clone(), &token, self.timeout);
            async move {
                let mut client = Self::client(&channel);
                if let Err(e) = client.ready().await {
                    return Attempt::NotSent(e.to_string());
                }
                let codec = tonic_prost::ProstCodec::<Q, R>::default();
                match call {
                    Err(error) => Attempt::Failed(error),
                    Ok(call) => match client
                        .unary(call, PathAndQuery::from_static(path), codec)
                        .await
                    {
                        Ok(response) => Attempt::Answered(response.into_inner()),
                        Err(status) => Attempt::Refused(status),
                    },
                }
            }
        })
        .await
    }

    /// Makes `attempt` on the members in turn until one answers, fails
    /// over as the module says, and names every member that failed.
    async fn on_members<R, F, Fut>(
        &self,
        idempotent: bool,
        operation: &'static str,
        attempt: F,
    ) -> Reply<R>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Attempt<R>>,
    {
        let mut failures = Vec::new();
        for (index, member) in self.in_order() {
            let span = tracing::debug_span!("etcd_grpc", operation, member = %member.address);
            let outcome = tokio::time::timeout(self.timeout, attempt(member.channel.clone()))
                .instrument(span)
                .await;
            match outcome {
                Ok(Attempt::Answered(reply)) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(Ok(reply));
                }
                Ok(Attempt::NotSent(why)) => failures.push(format!("{}: {why}", member.address)),
                Ok(Attempt::Refused(status)) if idempotent && unavailable(&status) => {
                    failures.push(format!("{}: {}", member.address, status.message()));
                }
                Ok(Attempt::Refused(status)) => return Ok(Err(refusal(&status, operation))),
                Ok(Attempt::Failed(error)) => return Err(error),
                Err(_) if idempotent => failures.push(format!("{}: timed out", member.address)),
                Err(_) => {
                    return Err(Error::Timeout {
                        operation,
                        after: self.timeout,
                    });
                }
            }
        }
        Err(Error::Unreachable {
            message: format!(
                "{operation}: no etcd member answered ({})",
                failures.join("; ")
            ),
            source: None,
        })
    }
}

/// `message` as a call: its deadline, and the token etcd's gRPC API reads
/// (`token` metadata).
fn request_with<M>(message: M, token: &Token, timeout: Duration) -> Result<tonic::Request<M>> {
    let mut call = tonic::Request::new(message);
    call.set_timeout(timeout);
    if let Some(token) = token {
        let mut value = MetadataValue::try_from(token.as_bytes())
            .map_err(|_| Error::malformed("etcd sent a token that is not a metadata value"))?;
        value.set_sensitive(true);
        call.metadata_mut().insert("token", value);
    }
    Ok(call)
}

/// How one member took a call.
enum Attempt<R> {
    Answered(R),
    /// No connection: nothing was sent.
    NotSent(String),
    Refused(tonic::Status),
    /// Nothing to send (a token that cannot be metadata).
    Failed(Error),
}

/// The member could not serve the call (down, no leader, the connection
/// broke): another may.
fn unavailable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    )
}

/// What etcd refused, as the gateway's refusals are read.
fn refusal(status: &tonic::Status, operation: &str) -> Refusal {
    Refusal::new(
        status.code() as i32,
        status.message().to_owned(),
        200,
        operation,
    )
}

#[async_trait]
impl Transport for Grpc {
    async fn range(
        &self,
        request: &wire::RangeRequest,
        token: Token,
    ) -> Reply<wire::RangeResponse> {
        let path = "/etcdserverpb.KV/Range";
        let reply = self
            .unary(path, convert::range(request), token, true, "etcd range")
            .await?;
        Ok(reply.map(convert::range_response))
    }

    async fn put(&self, request: &wire::PutRequest, token: Token) -> Reply<wire::PutResponse> {
        let path = "/etcdserverpb.KV/Put";
        let reply = self
            .unary(path, convert::put(request), token, true, "etcd put")
            .await?;
        Ok(reply.map(convert::put_response))
    }

    async fn delete_range(
        &self,
        request: &wire::DeleteRangeRequest,
        token: Token,
    ) -> Reply<wire::DeleteRangeResponse> {
        let path = "/etcdserverpb.KV/DeleteRange";
        let request = convert::delete_range(request);
        let reply = self
            .unary(path, request, token, true, "etcd delete")
            .await?;
        Ok(reply.map(convert::delete_range_response))
    }

    async fn txn(&self, request: &wire::TxnRequest, token: Token) -> Reply<wire::TxnResponse> {
        let path = "/etcdserverpb.KV/Txn";
        let reply = self
            .unary(path, convert::txn(request), token, false, "etcd txn")
            .await?;
        Ok(reply.map(convert::txn_response))
    }

    async fn lease_grant(
        &self,
        request: &wire::LeaseGrantRequest,
        token: Token,
    ) -> Reply<wire::LeaseGrantResponse> {
        let path = "/etcdserverpb.Lease/LeaseGrant";
        let request = proto::LeaseGrantRequest {
            ttl: request.ttl,
            id: 0,
        };
        let reply: std::result::Result<proto::LeaseGrantResponse, _> = self
            .unary(path, request, token, false, "etcd lease grant")
            .await?;
        Ok(reply.map(|reply| wire::LeaseGrantResponse {
            id: reply.id,
            ttl: reply.ttl,
        }))
    }

    async fn lease_revoke(
        &self,
        request: &wire::LeaseIdRequest,
        token: Token,
    ) -> Reply<wire::HeaderOnly> {
        let path = "/etcdserverpb.Lease/LeaseRevoke";
        let request = proto::LeaseIdRequest { id: request.id };
        let reply: std::result::Result<proto::LeaseRevokeResponse, _> = self
            .unary(path, request, token, true, "etcd lease revoke")
            .await?;
        Ok(reply.map(|reply| wire::HeaderOnly {
            header: convert::header(reply.header),
        }))
    }

    async fn lease_keep_alive(
        &self,
        request: &wire::LeaseIdRequest,
        token: Token,
    ) -> Reply<wire::KeepAliveResponse> {
        keep_alive::once(self, request.id, token).await
    }

    async fn authenticate(&self, request: &AuthenticateRequest) -> Reply<AuthenticateResponse> {
        let path = "/etcdserverpb.Auth/Authenticate";
        let request = proto::AuthenticateRequest {
            name: request.name.clone(),
            password: request.password.clone(),
        };
        let reply: std::result::Result<proto::AuthenticateResponse, _> = self
            .unary(path, request, None, true, "etcd authenticate")
            .await?;
        Ok(reply.map(|reply| AuthenticateResponse { token: reply.token }))
    }

    async fn status(&self, token: Token) -> Reply<()> {
        let path = "/etcdserverpb.Maintenance/Status";
        let reply: std::result::Result<proto::StatusResponse, _> = self
            .unary(path, proto::StatusRequest {}, token, true, "etcd status")
            .await?;
        Ok(reply.map(drop))
    }

    async fn watch(
        &self,
        request: &wire::WatchCreateRequest,
        token: Token,
    ) -> Result<Box<dyn WatchChannel>> {
        let request = convert::watch_create(request);
        let mut failures = Vec::new();
        for (index, member) in self.in_order() {
            match watch::open(&member.channel, request.clone(), &token, self.timeout).await {
                Ok(channel) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(channel);
                }
                Err(error) if error.is_retryable() => {
                    failures.push(format!("{}: {error}", member.address));
                }
                Err(error) => return Err(error),
            }
        }
        Err(Error::Unreachable {
            message: format!("etcd watch: no member answered ({})", failures.join("; ")),
            source: None,
        })
    }
}

#[cfg(test)]
mod tests;
