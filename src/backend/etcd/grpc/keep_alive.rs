//! Every lease of a store kept alive on one `LeaseKeepAlive` stream per
//! member: a keep-alive sends the lease's id and waits for the reply that
//! names it (etcd answers each request, in order per lease). One task owns
//! the stream; when it ends, every keep-alive waiting on it fails (and is
//! made again on a new stream by its caller's next try).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

use super::{Attempt, Grpc, next_message, proto, request_with, sleep_until_some};
use crate::Result;
use crate::backend::etcd::transport::Token;

const PATH: &str = "/etcdserverpb.Lease/LeaseKeepAlive";

type Answer = std::result::Result<proto::LeaseKeepAliveResponse, tonic::Status>;

/// The keep-alive stream of one member, opened on first use.
#[derive(Debug, Default)]
pub(super) struct SharedKeepAlives {
    current: Mutex<Option<Handle>>,
}

#[derive(Debug, Clone)]
struct Handle {
    token: Token,
    keep_alive: mpsc::UnboundedSender<(i64, oneshot::Sender<Answer>)>,
}

impl SharedKeepAlives {
    /// Keeps lease `id` alive once, on the member's stream.
    pub(super) async fn once(
        &self,
        grpc: &Grpc,
        channel: &Channel,
        id: i64,
        token: &Token,
    ) -> Attempt<proto::LeaseKeepAliveResponse> {
        let handle = match self.handle(grpc, channel, token) {
            Ok(handle) => handle,
            Err(error) => return Attempt::Failed(error),
        };
        let (answer, answered) = oneshot::channel();
        let ended = || Attempt::Refused(tonic::Status::unavailable("the keep-alive stream ended"));
        if handle.keep_alive.send((id, answer)).is_err() {
            return ended();
        }
        match answered.await {
            Ok(Ok(reply)) => Attempt::Answered(reply),
            Ok(Err(status)) => Attempt::Refused(status),
            Err(_) => ended(),
        }
    }

    fn handle(&self, grpc: &Grpc, channel: &Channel, token: &Token) -> Result<Handle> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(handle) = current.as_ref()
            && !handle.keep_alive.is_closed()
            && &handle.token == token
        {
            return Ok(handle.clone());
        }
        let (requests, outgoing) = mpsc::unbounded_channel::<proto::LeaseIdRequest>();
        let outgoing = futures::stream::unfold(outgoing, |mut outgoing| async move {
            outgoing.recv().await.map(|request| (request, outgoing))
        });
        let mut call = request_with(outgoing, token, grpc.timeout)?;
        call.metadata_mut().remove("grpc-timeout"); // long-lived
        let (keep_alive, received) = mpsc::unbounded_channel();
        let timeout = grpc.timeout;
        tokio::spawn(run(
            Grpc::client(channel),
            call,
            requests,
            received,
            timeout,
        ));
        let handle = Handle {
            token: token.clone(),
            keep_alive,
        };
        *current = Some(handle.clone());
        Ok(handle)
    }
}

type Waiting = HashMap<i64, VecDeque<oneshot::Sender<Answer>>>;

/// The stream's task: opens it (sending the keep-alives that arrive
/// meanwhile: etcd may answer with its headers only once it has something
/// to say), then runs until the stream ends or the store is gone.
async fn run<S>(
    mut client: tonic::client::Grpc<Channel>,
    call: tonic::Request<S>,
    requests: mpsc::UnboundedSender<proto::LeaseIdRequest>,
    mut keep_alives: mpsc::UnboundedReceiver<(i64, oneshot::Sender<Answer>)>,
    timeout: std::time::Duration,
) where
    S: futures::Stream<Item = proto::LeaseIdRequest> + Send + 'static,
{
    let mut waiting = Waiting::new();
    let ask = |waiting: &mut Waiting, id: i64, answer| {
        waiting.entry(id).or_default().push_back(answer);
        let _ = requests.send(proto::LeaseIdRequest { id });
    };
    let opening = async {
        client
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let codec = tonic_prost::ProstCodec::<proto::LeaseIdRequest, proto::LeaseKeepAliveResponse>::default();
        client
            .streaming(call, PathAndQuery::from_static(PATH), codec)
            .await
            .map(tonic::Response::into_inner)
    };
    tokio::pin!(opening);
    let mut replies = None;
    // Since when a keep-alive has waited with no reply at all: past the
    // timeout, the stream is stuck (stalled, or never opened) and ends, so
    // that the next keep-alive opens a new one.
    let mut waiting_since: Option<Instant> = None;
    let ended = loop {
        tokio::select! {
            opened = &mut opening, if replies.is_none() => match opened {
                Ok(opened) => replies = Some(opened),
                Err(status) => break status,
            },
            asked = keep_alives.recv() => match asked {
                Some((id, answer)) => {
                    waiting_since.get_or_insert_with(Instant::now);
                    ask(&mut waiting, id, answer);
                }
                None => return,
            },
            reply = next_message(&mut replies), if replies.is_some() => match reply {
                Ok(Some(reply)) => {
                    answer(&mut waiting, reply);
                    waiting_since = (!waiting.is_empty()).then(Instant::now);
                }
                Ok(None) => break tonic::Status::unavailable("the server ended the keep-alive stream"),
                Err(status) => break status,
            },
            _ = sleep_until_some(waiting_since.map(|since| since + timeout)), if waiting_since.is_some() => {
                break tonic::Status::unavailable("the keep-alive stream went silent");
            }
        }
    };
    for (_, queue) in waiting {
        for answer in queue {
            let _ = answer.send(Err(ended.clone()));
        }
    }
}

/// Hands `reply` to the oldest keep-alive of its lease.
fn answer(waiting: &mut Waiting, reply: proto::LeaseKeepAliveResponse) {
    let id = reply.id;
    if let Some(queue) = waiting.get_mut(&id) {
        if let Some(answer) = queue.pop_front() {
            let _ = answer.send(Ok(reply));
        }
        if queue.is_empty() {
            waiting.remove(&id);
        }
    }
}
