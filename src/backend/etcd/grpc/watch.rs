//! Every watch of a store on one member shares one `Watch` stream, told
//! apart by the watch id etcd gives each (etcd's own client does the same).
//! One task owns the stream: it sends the creates, one at a time (etcd
//! answers them in order, so the next `created` reply is the oldest
//! create's), and the cancels of dropped watches, and hands each reply to
//! its watch. When the stream ends or breaks, every watch on it is told
//! (they resume on a new stream, from their own next revision); a watch
//! opened with another token (after re-authentication) gets a new stream.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tonic::Streaming;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use super::{Grpc, convert, next_message, proto, request_with, sleep_until_some};
use crate::backend::etcd::transport::{Token, WatchChannel, WatchMessage, broken};
use crate::{Error, Result};

const PATH: &str = "/etcdserverpb.Watch/Watch";

/// Replies queued per watch before the stream waits for it to read them.
const QUEUED: usize = 64;

type Delivery = Result<WatchMessage>;

/// The watch stream of one member, opened on first use.
#[derive(Debug, Default)]
pub(super) struct SharedWatches {
    current: Mutex<Option<Handle>>,
}

/// The way to the task of an open stream.
#[derive(Debug, Clone)]
struct Handle {
    token: Token,
    commands: mpsc::UnboundedSender<Command>,
}

enum Command {
    Create {
        request: proto::WatchCreateRequest,
        opened: oneshot::Sender<Result<Opened>>,
    },
    Cancel(i64),
}

/// A created watch: its replies, and its cancel (sent when it is dropped,
/// whether or not its opener still waits for it).
struct Opened {
    replies: mpsc::Receiver<Delivery>,
    cancel: CancelOnDrop,
}

/// Cancels watch `id` on its stream when dropped.
struct CancelOnDrop {
    id: i64,
    /// Weak: the stream's task ends once only its own handles are left.
    commands: mpsc::WeakUnboundedSender<Command>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(commands) = self.commands.upgrade() {
            let _ = commands.send(Command::Cancel(self.id));
        }
    }
}

impl SharedWatches {
    /// Opens a watch on the member's stream (opening the stream first when
    /// there is none, it ended, or it carries another token).
    pub(super) async fn open(
        &self,
        channel: &Channel,
        create: proto::WatchCreateRequest,
        token: &Token,
        timeout: Duration,
    ) -> Result<Box<dyn WatchChannel>> {
        let handle = self.handle(channel, token, timeout)?;
        let (opened, created) = oneshot::channel();
        let command = Command::Create {
            request: create,
            opened,
        };
        if handle.commands.send(command).is_err() {
            return Err(broken("the watch stream ended"));
        }
        let opened = tokio::time::timeout(timeout, created)
            .await
            .map_err(|_| Error::Timeout {
                operation: "etcd watch",
                after: timeout,
            })?
            .map_err(|_| broken("the watch stream ended"))??;
        Ok(Box::new(SharedWatch {
            replies: opened.replies,
            _cancel: opened.cancel,
        }))
    }

    fn handle(&self, channel: &Channel, token: &Token, timeout: Duration) -> Result<Handle> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(handle) = current.as_ref()
            && !handle.commands.is_closed()
            && &handle.token == token
        {
            return Ok(handle.clone());
        }
        let (requests, call) = outgoing(token, timeout)?;
        let (commands, received) = mpsc::unbounded_channel();
        let handle = Handle {
            token: token.clone(),
            commands,
        };
        let weak = handle.commands.downgrade();
        tokio::spawn(run(
            Grpc::client(channel),
            call,
            requests,
            (received, weak),
            timeout,
        ));
        *current = Some(handle.clone());
        Ok(handle)
    }
}

type Call = tonic::Request<futures::stream::BoxStream<'static, proto::WatchRequest>>;

/// The stream's call, and where to put what it sends.
fn outgoing(
    token: &Token,
    timeout: Duration,
) -> Result<(mpsc::UnboundedSender<proto::WatchRequest>, Call)> {
    let (requests, outgoing) = mpsc::unbounded_channel::<proto::WatchRequest>();
    let outgoing = futures::stream::unfold(outgoing, |mut outgoing| async move {
        outgoing.recv().await.map(|request| (request, outgoing))
    });
    let mut call = request_with(Box::pin(outgoing) as _, token, timeout)?;
    // Long-lived: no deadline. A member without a leader cancels the
    // watches instead of leaving them hanging.
    call.metadata_mut().remove("grpc-timeout");
    call.metadata_mut()
        .insert("hasleader", MetadataValue::from_static("true"));
    Ok((requests, call))
}

/// A status that ended or refused the stream, as the watches' error.
fn status_error(status: &tonic::Status) -> Error {
    if super::unavailable(status) {
        broken(status.message())
    } else {
        super::refusal(status, "etcd watch").error
    }
}

/// The stream's task: opens it (sending the creates that arrive meanwhile:
/// etcd may answer with its headers only once it has something to say),
/// then runs until the stream ends, etcd leaves a create unanswered for
/// `timeout`, or the store is gone.
async fn run(
    mut client: tonic::client::Grpc<Channel>,
    call: Call,
    requests: mpsc::UnboundedSender<proto::WatchRequest>,
    (mut commands, weak): (
        mpsc::UnboundedReceiver<Command>,
        mpsc::WeakUnboundedSender<Command>,
    ),
    timeout: Duration,
) {
    let mut stream = Stream {
        requests,
        commands: weak,
        timeout,
        waiting: VecDeque::new(),
        creating: None,
        watches: HashMap::new(),
    };
    let opening = async {
        client.ready().await.map_err(|e| broken(e.to_string()))?;
        let codec = tonic_prost::ProstCodec::<proto::WatchRequest, proto::WatchResponse>::default();
        client
            .streaming(call, PathAndQuery::from_static(PATH), codec)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| status_error(&status))
    };
    tokio::pin!(opening);
    let mut replies: Option<Streaming<proto::WatchResponse>> = None;
    let ended = loop {
        let deadline = stream.creating.as_ref().map(|(_, by)| *by);
        tokio::select! {
            opened = &mut opening, if replies.is_none() => match opened {
                Ok(opened) => replies = Some(opened),
                Err(error) => break error,
            },
            command = commands.recv() => match command {
                Some(command) => stream.command(command),
                None => return,
            },
            reply = next_message(&mut replies), if replies.is_some() => match reply {
                Ok(Some(reply)) => stream.reply(reply),
                Ok(None) => break broken("the server ended the watch stream"),
                Err(status) => break status_error(&status),
            },
            _ = sleep_until_some(deadline), if deadline.is_some() => {
                break broken("etcd did not answer a watch create in time");
            }
        }
    };
    stream.end(&ended);
}

/// The stream's state, owned by its task.
struct Stream {
    requests: mpsc::UnboundedSender<proto::WatchRequest>,
    /// For the cancels of the watches it creates.
    commands: mpsc::WeakUnboundedSender<Command>,
    /// How long etcd may take to answer a create.
    timeout: Duration,
    /// Creates not sent yet: one is in flight at a time.
    waiting: VecDeque<(proto::WatchCreateRequest, oneshot::Sender<Result<Opened>>)>,
    /// The create in flight: who waits for it, and until when etcd may
    /// take to answer it.
    creating: Option<(oneshot::Sender<Result<Opened>>, Instant)>,
    watches: HashMap<i64, mpsc::Sender<Delivery>>,
}

impl Stream {
    fn command(&mut self, command: Command) {
        match command {
            Command::Create { request, opened } => {
                self.waiting.push_back((request, opened));
                self.send_next_create();
            }
            Command::Cancel(id) => {
                if self.watches.remove(&id).is_some() {
                    self.cancel(id);
                }
            }
        }
    }

    fn cancel(&self, id: i64) {
        self.send(proto::WatchRequestUnion::Cancel(
            proto::WatchCancelRequest { watch_id: id },
        ));
    }

    fn send(&self, request: proto::WatchRequestUnion) {
        // Closed only once the stream is gone, which the reply side sees.
        let _ = self.requests.send(proto::WatchRequest {
            request_union: Some(request),
        });
    }

    fn send_next_create(&mut self) {
        while self.creating.is_none() {
            let Some((request, opened)) = self.waiting.pop_front() else {
                return;
            };
            if opened.is_closed() {
                continue; // its opener gave up
            }
            self.send(proto::WatchRequestUnion::Create(request));
            self.creating = Some((opened, Instant::now() + self.timeout));
        }
    }

    fn reply(&mut self, reply: proto::WatchResponse) {
        let id = reply.watch_id;
        if reply.created {
            if let Some((opened, _)) = self.creating.take() {
                let (deliver, replies) = mpsc::channel(QUEUED);
                let canceled = reply.canceled;
                let response = convert::watch_response(reply);
                let _ = deliver.try_send(Ok(WatchMessage::Response(response)));
                if !canceled {
                    self.watches.insert(id, deliver);
                }
                // Dropped unopened (its opener gave up), it cancels itself.
                let cancel = CancelOnDrop {
                    id,
                    commands: self.commands.clone(),
                };
                let _ = opened.send(Ok(Opened { replies, cancel }));
            }
            self.send_next_create();
            return;
        }
        let canceled = reply.canceled;
        let Some(watch) = self.watches.get(&id) else {
            return;
        };
        // Never waits: a watch whose reader is behind by a full queue is
        // let go (cancelled here, its sender dropped). It reads what was
        // queued, then learns its stream ended and resumes from its own
        // next revision on a new watch: nothing lost, and no other watch of
        // the stream waits for it.
        let delivered = watch.try_send(Ok(WatchMessage::Response(convert::watch_response(reply))));
        if canceled {
            self.watches.remove(&id);
        } else if delivered.is_err() {
            self.watches.remove(&id);
            self.cancel(id);
        }
    }

    /// Tells every watch and opener the stream ended with `error`.
    fn end(&mut self, error: &Error) {
        for (_, watch) in self.watches.drain() {
            let _ = watch.try_send(Err(error.clone()));
        }
        if let Some((opened, _)) = self.creating.take() {
            let _ = opened.send(Err(error.clone()));
        }
        for (_, opened) in self.waiting.drain(..) {
            let _ = opened.send(Err(error.clone()));
        }
    }
}

/// One watch on a shared stream; dropped, it is cancelled there.
struct SharedWatch {
    replies: mpsc::Receiver<Delivery>,
    _cancel: CancelOnDrop,
}

#[async_trait]
impl WatchChannel for SharedWatch {
    async fn next(&mut self) -> Result<Option<WatchMessage>> {
        match self.replies.recv().await {
            Some(delivery) => delivery.map(Some),
            // The stream's task is gone without a word: broken.
            None => Err(broken("the watch stream ended")),
        }
    }
}
