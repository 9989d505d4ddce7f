//! One `POST /v3/watch` stream of one key or prefix, resumed after any
//! failure from the next revision it has not delivered.
//!
//! - The reply is newline-delimited JSON, parsed by line (not by chunk);
//!   fragmented results are joined.
//! - `next_rev` is kept as etcd's own client keeps it: the last event's
//!   `mod_revision + 1`, or `header.revision + 1` after a progress
//!   notification; events below it are dropped, so a resume repeats nothing.
//! - A dropped connection, a silent stream (nothing for longer than
//!   `Config::stall_timeout`: the stream asks for progress notifications, so
//!   a live idle stream is re-opened at most once per period) or an error
//!   line with code 13/14 reconnects with capped, jittered backoff. When the
//!   server has compacted the revisions the stream needs, it says so
//!   ([`Interruption::Compacted`]) and its owner decides where to go on.
//! - `Grpc-Metadata-Hasleader: true` makes a member without a leader cancel
//!   the watch instead of leaving it hanging.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, StatusCode};

use super::Inner;
use super::client::range_of;
use super::refusal::{self, code};
use super::watch_messages::{CreateRequest, WatchEvent, WatchLine, WatchRequest};
use crate::backoff::Backoff;
use crate::http::HttpRequest;
use crate::watch::WatchTarget;
use crate::{Error, KvEvent, Result};

/// A watch reply line larger than this is refused.
const MAX_LINE: usize = 64 * 1024 * 1024;

/// The key and whether it is a prefix.
pub(super) fn key_and_prefix(target: &WatchTarget) -> (&str, bool) {
    match target {
        WatchTarget::Key(key) => (key, false),
        WatchTarget::Prefix(prefix) => (prefix, true),
    }
}

/// Turns a wire event into a `KvEvent`; its version is its revision.
pub(super) fn into_event(event: WatchEvent) -> Result<KvEvent> {
    if event.kind.as_deref() == Some("DELETE") {
        let key = event.kv.key_text()?;
        let version = event.kv.version()?;
        return Ok(KvEvent::Delete { key, version });
    }
    Ok(KvEvent::Put(event.kv.into_pair()?))
}

/// Why a stream stopped for good (it retries everything else itself).
#[derive(Debug)]
pub(super) enum Interruption {
    /// The server dropped the revisions the stream needs (the oldest it
    /// still has is given): its owner re-reads and calls
    /// [`WatchStream::restart_at`].
    Compacted(i64),
    /// The watch cannot go on.
    Fatal(Error),
}

/// One watch stream and its position.
pub(super) struct WatchStream {
    inner: Arc<Inner>,
    target: WatchTarget,
    /// The first revision not yet delivered.
    next_rev: i64,
    body: Option<Incoming>,
    buffer: Vec<u8>,
    /// Events of a fragmented result, until its last fragment.
    fragments: Vec<WatchEvent>,
    /// Events read and not yet handed out.
    ready: Vec<WatchEvent>,
    backoff: Backoff,
}

impl WatchStream {
    /// A stream of `target` from `next_rev`; it connects when first read.
    pub(super) fn new(inner: Arc<Inner>, target: WatchTarget, next_rev: i64) -> Self {
        WatchStream {
            inner,
            target,
            next_rev,
            body: None,
            buffer: Vec::new(),
            fragments: Vec::new(),
            ready: Vec::new(),
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
        }
    }

    /// The first revision not yet delivered.
    pub(super) fn next_rev(&self) -> i64 {
        self.next_rev
    }

    /// Goes on from `next_rev` (after a compaction's re-read).
    pub(super) fn restart_at(&mut self, next_rev: i64) {
        self.disconnect();
        self.next_rev = next_rev;
    }

    fn disconnect(&mut self) {
        self.body = None;
        self.buffer.clear();
        self.fragments.clear();
    }

    /// The next events, in revision order, none delivered before.
    pub(super) async fn next_batch(
        &mut self,
    ) -> std::result::Result<Vec<WatchEvent>, Interruption> {
        loop {
            if !self.ready.is_empty() {
                return Ok(std::mem::take(&mut self.ready));
            }
            if self.body.is_none() {
                self.connect().await.map_err(Interruption::Fatal)?;
                continue;
            }
            match self.read_lines().await {
                Ok(()) => {}
                Err(Failure::Retry(why)) => {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(%why, ?delay, next_rev = self.next_rev, "etcd watch interrupted; resuming");
                    self.disconnect();
                    tokio::time::sleep(delay).await;
                }
                Err(Failure::Compacted(oldest)) => {
                    self.disconnect();
                    return Err(Interruption::Compacted(oldest));
                }
                Err(Failure::Fatal(error)) => return Err(Interruption::Fatal(error)),
            }
        }
    }

    /// Opens the watch stream at `next_rev`, retrying until it is open or a
    /// fatal error.
    async fn connect(&mut self) -> Result<()> {
        let (key, prefix) = key_and_prefix(&self.target);
        let (key, range_end) = range_of(key, prefix);
        let request = WatchRequest {
            create_request: CreateRequest {
                key,
                range_end,
                start_revision: self.next_rev.to_string(),
                progress_notify: true,
            },
        };
        let body = serde_json::to_vec(&request)
            .map_err(|e| Error::InvalidArgument(format!("cannot encode a watch request: {e}")))?;
        let has_leader = (
            HeaderName::from_static("grpc-metadata-hasleader"),
            HeaderValue::from_static("true"),
        );
        loop {
            let mut headers = self.inner.client.auth_headers().await?;
            headers.push(has_leader.clone());
            let opened = self
                .inner
                .client
                .http
                .open_stream(&HttpRequest {
                    method: Method::POST,
                    path: "/v3/watch",
                    body: bytes::Bytes::from(body.clone()),
                    idempotent: true,
                    timeout: self.inner.config.timeout,
                    operation: "etcd watch",
                    headers: &headers,
                    long_lived: true,
                })
                .await;
            match opened {
                Ok(response) if response.status() == StatusCode::OK => {
                    self.body = Some(response.into_body());
                    return Ok(());
                }
                Ok(response) => {
                    let status = response.status();
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let reply = crate::http::HttpReply {
                        status,
                        headers: Default::default(),
                        body,
                    };
                    let error = refusal::classify(&reply, "etcd watch");
                    if !error.is_retryable() {
                        return Err(error);
                    }
                    tokio::time::sleep(self.backoff.next_delay()).await;
                }
                Err(error) if error.is_retryable() => {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(%error, ?delay, "etcd watch: cannot open the stream; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Reads the stream until at least one event is pending.
    async fn read_lines(&mut self) -> std::result::Result<(), Failure> {
        while self.ready.is_empty() {
            let Some(body) = self.body.as_mut() else {
                return Err(Failure::Retry("no stream".into()));
            };
            let silence = self.inner.config.stall_timeout;
            let frame = match tokio::time::timeout(silence, body.frame()).await {
                Err(_) => return Err(Failure::Retry("the stream was silent for too long".into())),
                Ok(None) => return Err(Failure::Retry("the server ended the stream".into())),
                Ok(Some(Err(e))) => return Err(Failure::Retry(format!("the stream broke: {e}"))),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            // A frame usually holds whole lines: they are read where they
            // are, and only a line's unfinished start is kept for the next.
            let mut buffer = std::mem::take(&mut self.buffer);
            if buffer.is_empty() {
                let read = self.handle_lines(&data)?;
                buffer.extend_from_slice(&data[read..]);
            } else {
                buffer.extend_from_slice(&data);
                let read = self.handle_lines(&buffer)?;
                buffer.drain(..read);
            }
            self.buffer = buffer;
            if self.buffer.len() > MAX_LINE {
                return Err(Failure::Fatal(Error::malformed(format!(
                    "an etcd watch line is longer than {MAX_LINE} bytes"
                ))));
            }
        }
        self.backoff.reset();
        Ok(())
    }

    /// Handles every whole line of `text`; returns how many bytes they take.
    fn handle_lines(&mut self, text: &[u8]) -> std::result::Result<usize, Failure> {
        let mut read = 0;
        while let Some(end) = text[read..].iter().position(|b| *b == b'\n') {
            self.handle_line(&text[read..read + end])?;
            read += end + 1;
        }
        Ok(read)
    }

    fn handle_line(&mut self, line: &[u8]) -> std::result::Result<(), Failure> {
        let line = line.trim_ascii();
        if line.is_empty() {
            return Ok(());
        }
        let parsed: WatchLine = serde_json::from_slice(line).map_err(|e| {
            Failure::Fatal(Error::undecodable(
                format!("etcd watch line {:?}", crate::http::excerpt(line)),
                e,
            ))
        })?;
        if let Some(error) = parsed.error {
            if refusal::is_invalid_token(error.grpc_code, &error.message) {
                self.inner.client.forget_token();
                return Err(Failure::Retry("the auth token expired".into()));
            }
            return match error.grpc_code {
                code::UNAVAILABLE | code::INTERNAL => Err(Failure::Retry(error.message)),
                other => Err(Failure::Fatal(refusal::classify_code(
                    other,
                    &error.message,
                    "etcd watch",
                    200,
                ))),
            };
        }
        let Some(result) = parsed.result else {
            return Ok(());
        };
        if result.canceled {
            if result.compact_revision > 0 {
                return Err(Failure::Compacted(result.compact_revision));
            }
            let reason = if result.cancel_reason.is_empty() {
                "no reason given".into()
            } else {
                result.cancel_reason
            };
            if refusal::is_invalid_token(0, &reason) {
                self.inner.client.forget_token();
                return Err(Failure::Retry(reason));
            }
            if reason.contains("no leader") {
                return Err(Failure::Retry(reason));
            }
            return Err(Failure::Fatal(refusal::classify_code(
                if reason.contains("permission denied") {
                    code::PERMISSION_DENIED
                } else {
                    0
                },
                &reason,
                "etcd watch",
                200,
            )));
        }
        if result.fragment {
            self.fragments.extend(result.events);
            return Ok(());
        }
        let mut events = std::mem::take(&mut self.fragments);
        events.extend(result.events);
        if events.is_empty() {
            if !result.created && result.header.revision > 0 {
                // A progress notification: everything up to it was delivered.
                self.next_rev = self.next_rev.max(result.header.revision + 1);
            }
            return Ok(());
        }
        let mut last = self.next_rev - 1;
        for event in events {
            let revision = event.kv.mod_revision;
            if revision < self.next_rev {
                continue; // already delivered before a resume
            }
            last = last.max(revision);
            self.ready.push(event);
        }
        self.next_rev = last + 1;
        Ok(())
    }
}

/// Why a stream stopped reading.
enum Failure {
    /// Reconnect from `next_rev`.
    Retry(String),
    /// The server dropped the revisions this stream needs; the oldest it has.
    Compacted(i64),
    /// The watch cannot go on.
    Fatal(Error),
}
