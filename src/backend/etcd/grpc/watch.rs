//! One watch on a `Watch` stream of its own: the create request sent, the
//! stream kept open, its replies read as the watch's messages.

use async_trait::async_trait;
use futures::StreamExt;
use tonic::Streaming;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use super::{Grpc, convert, proto, request_with};
use crate::backend::etcd::transport::{Token, WatchChannel, WatchMessage, broken};
use crate::{Error, Result};

const PATH: &str = "/etcdserverpb.Watch/Watch";

/// An open watch stream.
pub(super) struct GrpcWatch {
    replies: Streaming<proto::WatchResponse>,
}

/// Opens a watch stream on `channel` with `create` as its first request.
pub(super) async fn open(
    channel: &Channel,
    create: proto::WatchCreateRequest,
    token: &Token,
    timeout: std::time::Duration,
) -> Result<Box<dyn WatchChannel>> {
    let first = proto::WatchRequest {
        request_union: Some(proto::WatchRequestUnion::Create(create)),
    };
    // Never ends: the watch lasts until the reply stream is dropped.
    let requests = futures::stream::once(async move { first }).chain(futures::stream::pending());
    let mut call = request_with(requests, token, timeout)?;
    // A watch is long-lived: no deadline. A member without a leader cancels
    // it instead of leaving it hanging.
    call.metadata_mut().remove("grpc-timeout");
    call.metadata_mut()
        .insert("hasleader", MetadataValue::from_static("true"));
    let mut client = Grpc::client(channel);
    let opened = tokio::time::timeout(timeout, async {
        client.ready().await.map_err(|e| broken(e.to_string()))?;
        let codec = tonic_prost::ProstCodec::<proto::WatchRequest, proto::WatchResponse>::default();
        client
            .streaming(call, PathAndQuery::from_static(PATH), codec)
            .await
            .map_err(|status| status_error(&status))
    })
    .await
    .map_err(|_| Error::Timeout {
        operation: "etcd watch",
        after: timeout,
    })??;
    Ok(Box::new(GrpcWatch {
        replies: opened.into_inner(),
    }))
}

/// A status that ended or refused a watch stream, as the watch's error.
fn status_error(status: &tonic::Status) -> Error {
    if super::unavailable(status) {
        broken(status.message())
    } else {
        super::refusal(status, "etcd watch").error
    }
}

#[async_trait]
impl WatchChannel for GrpcWatch {
    async fn next(&mut self) -> Result<Option<WatchMessage>> {
        match self.replies.message().await {
            Ok(Some(reply)) => Ok(Some(WatchMessage::Response(convert::watch_response(reply)))),
            Ok(None) => Ok(None),
            Err(status) if super::unavailable(&status) => Err(broken(status.message())),
            Err(status) => Ok(Some(WatchMessage::Error {
                code: status.code() as i32,
                message: status.message().to_owned(),
            })),
        }
    }
}
