//! Watches on etcd: one long `POST /v3/watch` per watch, resumed after any
//! failure from the next revision it has not delivered.
//!
//! - The initial state is a range read at revision R; the stream then starts
//!   at R + 1. With `after(v)` it starts at v + 1.
//! - The reply is newline-delimited JSON, parsed by line (not by chunk);
//!   fragmented results are joined.
//! - `next_rev` is kept as etcd's own client keeps it: the last event's
//!   `mod_revision + 1`, or `header.revision + 1` after a progress
//!   notification; events below it are dropped, so a resume repeats nothing.
//! - A dropped connection, a silent stream (nothing for longer than
//!   `Config::stall_timeout`: the watch asks for progress notifications, so
//!   a live idle stream is re-opened at most once per period) or an error line with code 13/14 reconnects with capped,
//!   jittered backoff. When the server has compacted the revisions the watch
//!   needs, the watch re-reads the range and yields the difference with what
//!   it had delivered, then continues from that read.
//! - `Grpc-Metadata-Hasleader: true` makes a member without a leader cancel
//!   the watch instead of leaving it hanging.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::Inner;
use super::client::range_of;
use super::wire::{self, Header, KeyValue, code};
use crate::backoff::Backoff;
use crate::http::HttpRequest;
use crate::watch::WatchTarget;
use crate::{Error, KvEvent, Result, WatchOptions};

/// A watch reply line larger than this is refused.
const MAX_LINE: usize = 64 * 1024 * 1024;

#[derive(Debug, Serialize)]
struct WatchRequest {
    create_request: CreateRequest,
}

#[derive(Debug, Serialize)]
struct CreateRequest {
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    range_end: Option<String>,
    start_revision: String,
    progress_notify: bool,
}

#[derive(Debug, Deserialize)]
struct WatchLine {
    #[serde(default)]
    result: Option<WatchResult>,
    #[serde(default)]
    error: Option<StreamError>,
}

#[derive(Debug, Default, Deserialize)]
struct WatchResult {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    created: bool,
    #[serde(default)]
    canceled: bool,
    #[serde(default)]
    compact_revision: Option<serde_json::Value>,
    #[serde(default)]
    cancel_reason: String,
    #[serde(default)]
    fragment: bool,
    #[serde(default)]
    events: Vec<WatchEvent>,
}

#[derive(Debug, Deserialize)]
struct WatchEvent {
    /// Absent for a PUT (the zero value).
    #[serde(default, rename = "type")]
    kind: Option<String>,
    kv: KeyValue,
}

#[derive(Debug, Deserialize)]
struct StreamError {
    #[serde(default, alias = "code")]
    grpc_code: i32,
    #[serde(default)]
    message: String,
}

fn json_int(value: &Option<serde_json::Value>) -> i64 {
    match value {
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// Decodes one watch line as the stream does, events included (for fuzzing).
#[cfg(feature = "fuzzing")]
pub(super) fn decode_line(line: &[u8]) {
    let Ok(parsed) = serde_json::from_slice::<WatchLine>(line.trim_ascii()) else {
        return;
    };
    if let Some(result) = parsed.result {
        let _ = json_int(&result.compact_revision);
        for event in result.events {
            let _ = event.kv.key_text();
            let _ = event.kv.version();
            let _ = event.kv.into_pair();
        }
    }
}

/// One watch's position and connection.
struct EtcdWatch {
    inner: Arc<Inner>,
    target: WatchTarget,
    /// The first revision not yet delivered.
    next_rev: i64,
    /// Key → version of every key this watch has reported present, for the
    /// difference after a compaction.
    known: BTreeMap<String, u64>,
    pending: VecDeque<KvEvent>,
    body: Option<Incoming>,
    buffer: Vec<u8>,
    /// Events of a fragmented result, until its last fragment.
    fragments: Vec<WatchEvent>,
    backoff: Backoff,
}

fn key_and_prefix(target: &WatchTarget) -> (&str, bool) {
    match target {
        WatchTarget::Key(key) => (key, false),
        WatchTarget::Prefix(prefix) => (prefix, true),
    }
}

/// The event stream of one watch, with its initial state read now.
pub(super) async fn open(
    inner: &Arc<Inner>,
    target: WatchTarget,
    options: WatchOptions,
) -> Result<BoxStream<'static, Result<KvEvent>>> {
    let (key, prefix) = key_and_prefix(&target);
    let mut watch = EtcdWatch {
        inner: inner.clone(),
        target: target.clone(),
        next_rev: 0,
        known: BTreeMap::new(),
        pending: VecDeque::new(),
        body: None,
        buffer: Vec::new(),
        fragments: Vec::new(),
        backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
    };
    match options.after {
        None => {
            let (pairs, revision) = inner.client.range(key, prefix, 0).await?;
            for pair in pairs {
                watch.known.insert(pair.key.clone(), pair.version);
                watch.pending.push_back(KvEvent::Put(pair));
            }
            watch.next_rev = revision + 1;
        }
        Some(after) => {
            let after = i64::try_from(after)
                .map_err(|_| Error::InvalidArgument(format!("version {after} is too large")))?;
            // What the caller had at `after`, for a later compaction's
            // difference. If etcd compacted past it, deletions since cannot
            // be known: say so rather than leave a silent gap.
            let (pairs, _) = match inner.client.range(key, prefix, after.max(1)).await {
                Ok(read) => read,
                Err(error) if error.to_string().contains("compacted") => {
                    let (_, now) = inner.client.range(key, prefix, 0).await?;
                    return Err(Error::Compacted {
                        requested: after as u64,
                        oldest: u64::try_from(now).unwrap_or(0),
                    });
                }
                // `after` is ahead of the store: everything now is known.
                Err(error) if error.to_string().contains("future revision") => {
                    inner.client.range(key, prefix, 0).await?
                }
                Err(error) => return Err(error),
            };
            watch
                .known
                .extend(pairs.into_iter().map(|p| (p.key, p.version)));
            watch.next_rev = after + 1;
        }
    }
    Ok(futures::stream::unfold(Some(watch), |watch| async move {
        let mut watch = watch?;
        match watch.next_event().await {
            Ok(event) => Some((Ok(event), Some(watch))),
            Err(error) => Some((Err(error), None)),
        }
    })
    .boxed())
}

impl EtcdWatch {
    async fn next_event(&mut self) -> Result<KvEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            if self.body.is_none() {
                self.connect().await?;
                continue;
            }
            match self.read_lines().await {
                Ok(()) => {}
                Err(Failure::Retry(why)) => {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(%why, ?delay, next_rev = self.next_rev, "etcd watch interrupted; resuming");
                    self.body = None;
                    self.buffer.clear();
                    self.fragments.clear();
                    tokio::time::sleep(delay).await;
                }
                Err(Failure::Compacted) => {
                    self.body = None;
                    self.buffer.clear();
                    self.fragments.clear();
                    self.resync().await?;
                }
                Err(Failure::Fatal(error)) => return Err(error),
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
                    let error = wire::classify(&reply, "etcd watch");
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
        while self.pending.is_empty() {
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
            self.buffer.extend_from_slice(&data);
            while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                self.handle_line(&line)?;
            }
            if self.buffer.len() > MAX_LINE {
                return Err(Failure::Fatal(Error::MalformedReply(format!(
                    "an etcd watch line is longer than {MAX_LINE} bytes"
                ))));
            }
        }
        self.backoff.reset();
        Ok(())
    }

    fn handle_line(&mut self, line: &[u8]) -> std::result::Result<(), Failure> {
        let line = line.trim_ascii();
        if line.is_empty() {
            return Ok(());
        }
        let parsed: WatchLine = serde_json::from_slice(line).map_err(|e| {
            Failure::Fatal(Error::MalformedReply(format!(
                "etcd watch line: {e}: {:?}",
                crate::http::excerpt(line)
            )))
        })?;
        if let Some(error) = parsed.error {
            if super::auth::is_invalid_token(error.grpc_code, &error.message) {
                self.inner.client.forget_token();
                return Err(Failure::Retry("the auth token expired".into()));
            }
            return match error.grpc_code {
                code::UNAVAILABLE | code::INTERNAL => Err(Failure::Retry(error.message)),
                other => Err(Failure::Fatal(wire::classify_code(
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
            if json_int(&result.compact_revision) > 0 {
                return Err(Failure::Compacted);
            }
            let reason = if result.cancel_reason.is_empty() {
                "no reason given".into()
            } else {
                result.cancel_reason
            };
            if super::auth::is_invalid_token(0, &reason) {
                self.inner.client.forget_token();
                return Err(Failure::Retry(reason));
            }
            if reason.contains("no leader") {
                return Err(Failure::Retry(reason));
            }
            return Err(Failure::Fatal(wire::classify_code(
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
            let event = self.record(event).map_err(Failure::Fatal)?;
            self.pending.push_back(event);
        }
        self.next_rev = last + 1;
        Ok(())
    }

    /// Turns a wire event into a `KvEvent`, updating what this watch knows.
    fn record(&mut self, event: WatchEvent) -> Result<KvEvent> {
        if event.kind.as_deref() == Some("DELETE") {
            let key = event.kv.key_text()?;
            let version = event.kv.version()?;
            self.known.remove(&key);
            return Ok(KvEvent::Delete { key, version });
        }
        let pair = event.kv.into_pair()?;
        self.known.insert(pair.key.clone(), pair.version);
        Ok(KvEvent::Put(pair))
    }

    /// After a compaction: re-reads the range and queues the difference with
    /// what this watch has delivered, then continues after that read.
    async fn resync(&mut self) -> Result<()> {
        let (key, prefix) = key_and_prefix(&self.target);
        let (pairs, revision) = self.inner.client.range(key, prefix, 0).await?;
        tracing::info!(
            next_rev = self.next_rev,
            revision,
            "etcd compacted the watch's history; resyncing"
        );
        let deleted_at = u64::try_from(revision).unwrap_or(0).max(1);
        let events = crate::watch::difference(&mut self.known, &pairs, deleted_at);
        self.pending.extend(events);
        self.next_rev = revision + 1;
        Ok(())
    }
}

/// Why a stream stopped.
enum Failure {
    /// Reconnect from `next_rev`.
    Retry(String),
    /// The server dropped the revisions this watch needs.
    Compacted,
    /// The watch cannot go on.
    Fatal(Error),
}
