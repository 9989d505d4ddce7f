//! One keep-alive of one lease: etcd has only the `LeaseKeepAlive` stream,
//! so a keep-alive is one request sent on a stream of its own and its one
//! reply read.

use futures::StreamExt;
use tonic::codegen::http::uri::PathAndQuery;

use super::{Attempt, Grpc, proto, request_with};
use crate::backend::etcd::transport::{Reply, Token};
use crate::backend::etcd::wire;

const PATH: &str = "/etcdserverpb.Lease/LeaseKeepAlive";

/// Keeps lease `id` alive once: its TTL left, 0 when it has expired.
pub(super) async fn once(grpc: &Grpc, id: i64, token: Token) -> Reply<wire::KeepAliveResponse> {
    let reply = grpc
        .on_members(true, "etcd lease keepalive", |channel| {
            // The stream stays open until the reply is read: a half-closed
            // stream may be ended by the server before it answers.
            let requests = futures::stream::once(async move { proto::LeaseIdRequest { id } })
                .chain(futures::stream::pending());
            let call = request_with(requests, &token, grpc.timeout);
            async move {
                let mut client = Grpc::client(&channel);
                if let Err(e) = client.ready().await {
                    return Attempt::NotSent(e.to_string());
                }
                let call = match call {
                    Ok(call) => call,
                    Err(error) => return Attempt::Failed(error),
                };
                let codec = tonic_prost::ProstCodec::<
                    proto::LeaseIdRequest,
                    proto::LeaseKeepAliveResponse,
                >::default();
                let mut replies = match client
                    .streaming(call, PathAndQuery::from_static(PATH), codec)
                    .await
                {
                    Ok(response) => response.into_inner(),
                    Err(status) => return Attempt::Refused(status),
                };
                match replies.message().await {
                    Ok(Some(reply)) => Attempt::Answered(reply),
                    Ok(None) => Attempt::Refused(tonic::Status::unavailable(
                        "the keep-alive stream ended without a reply",
                    )),
                    Err(status) => Attempt::Refused(status),
                }
            }
        })
        .await?;
    Ok(reply.map(|reply| wire::KeepAliveResponse {
        result: Some(wire::LeaseGrantResponse {
            id: reply.id,
            ttl: reply.ttl,
        }),
    }))
}
