//! etcd's calls over gRPC: each call's service path, its message in
//! protobuf form, and whether it may run twice (for failover). A plain put
//! or delete may not: run again after its first run was applied, it would
//! undo whatever another client wrote between the two (etcd's own client
//! resends neither once it may have reached the server).

use std::sync::atomic::Ordering;

use async_trait::async_trait;

use super::{Grpc, convert, proto};
use crate::backend::etcd::auth::{AuthenticateRequest, AuthenticateResponse};
use crate::backend::etcd::transport::{Reply, Token, Transport, WatchChannel};
use crate::backend::etcd::wire;
use crate::{Error, Result};

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
            .unary(path, convert::put(request), token, false, "etcd put")
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
            .unary(path, request, token, false, "etcd delete")
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
            // Sent again, a grant leaves at most an unused lease, which
            // expires at its TTL.
            .unary(path, request, token, true, "etcd lease grant")
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
        let id = request.id;
        let reply = self
            .on_members(true, "etcd lease keepalive", |member| {
                member.keep_alives.once(self, member.channel(), id, &token)
            })
            .await?;
        Ok(reply.map(|reply| wire::KeepAliveResponse {
            result: Some(wire::LeaseGrantResponse {
                id: reply.id,
                ttl: reply.ttl,
            }),
        }))
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
        let reply: Reply<proto::StatusResponse> = self
            .unary(path, proto::StatusRequest {}, token, true, "etcd status")
            .await;
        match reply {
            Ok(reply) => Ok(reply.map(drop)),
            Err(Error::Unreachable { message, source })
                if source
                    .as_ref()
                    .and_then(|s| s.downcast_ref::<super::Failures>())
                    .is_some_and(|f| f.all_broke) =>
            {
                Err(Error::MalformedReply {
                    message: format!(
                        "connecting to etcd: the server there does not speak the etcd API over gRPC (is it an etcd server? {message})"
                    ),
                    source,
                })
            }
            Err(error) => Err(error),
        }
    }

    async fn watch(
        &self,
        request: &wire::WatchCreateRequest,
        token: Token,
    ) -> Result<Box<dyn WatchChannel>> {
        let request = convert::watch_create(request);
        let mut failures = Vec::new();
        for (index, member) in self.in_order() {
            let opened = member
                .watches
                .open(member.channel(), request.clone(), &token, self.timeout)
                .await;
            match opened {
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
        Err(self.none_answered("etcd watch", failures, false))
    }
}
