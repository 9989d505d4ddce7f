//! One watch of one key or prefix, resumed after any failure from the next
//! revision it has not delivered, over whichever transport the store uses.
//!
//! - Fragmented results are joined.
//! - `next_rev` is kept as etcd's own client keeps it: the last event's
//!   `mod_revision + 1`, or `header.revision + 1` after a progress
//!   notification; events below it are dropped, so a resume repeats nothing.
//! - A dropped connection, a silent watch (nothing for longer than
//!   `Config::stall_timeout`: the watch asks for progress notifications, so
//!   a live idle watch is re-opened at most once per period) or an error
//!   with code 13/14 reconnects with capped, jittered backoff. When the
//!   server has compacted the revisions the watch needs, it says so
//!   ([`Interruption::Compacted`]) and its owner decides where to go on.
//! - A member without a leader cancels the watch instead of leaving it
//!   hanging (the transport asks for that).

use std::sync::Arc;
use std::time::Duration;

use super::Inner;
use super::client::range_of;
use super::refusal::{self, code};
use super::transport::{WatchChannel, WatchMessage};
use super::wire::{WatchCreateRequest, WatchEvent, WatchResponse};
use crate::backoff::Backoff;
use crate::watch::WatchTarget;
use crate::{Error, KvEvent, Result};

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

/// One watch and its position.
pub(super) struct WatchStream {
    inner: Arc<Inner>,
    target: WatchTarget,
    /// The first revision not yet delivered.
    next_rev: i64,
    channel: Option<Box<dyn WatchChannel>>,
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
            channel: None,
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
        self.channel = None;
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
            if self.channel.is_none() {
                self.connect().await.map_err(Interruption::Fatal)?;
                continue;
            }
            match self.read().await {
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

    /// Opens the watch at `next_rev`, retrying until it is open or a
    /// fatal error.
    async fn connect(&mut self) -> Result<()> {
        let (key, prefix) = key_and_prefix(&self.target);
        let (key, range_end) = range_of(key, prefix);
        let request = WatchCreateRequest {
            key,
            range_end,
            start_revision: self.next_rev,
            progress_notify: true,
        };
        loop {
            let token = self.inner.client.token().await?;
            match self.inner.client.transport.watch(&request, token).await {
                Ok(channel) => {
                    self.channel = Some(channel);
                    return Ok(());
                }
                Err(error) if error.is_retryable() => {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(%error, ?delay, "etcd watch: cannot open it; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Reads the watch until at least one event is pending.
    async fn read(&mut self) -> std::result::Result<(), Failure> {
        while self.ready.is_empty() {
            let Some(channel) = self.channel.as_mut() else {
                return Err(Failure::Retry("no watch".into()));
            };
            let silence = self.inner.config.stall_timeout;
            match tokio::time::timeout(silence, channel.next()).await {
                Err(_) => return Err(Failure::Retry("the watch was silent for too long".into())),
                Ok(Ok(None)) => return Err(Failure::Retry("the server ended the watch".into())),
                Ok(Err(error)) if error.is_retryable() => {
                    return Err(Failure::Retry(error.to_string()));
                }
                Ok(Err(error)) => return Err(Failure::Fatal(error)),
                Ok(Ok(Some(WatchMessage::Error { code, message }))) => {
                    self.handle_error(code, message)?;
                }
                Ok(Ok(Some(WatchMessage::Response(response)))) => self.handle(response)?,
            }
        }
        self.backoff.reset();
        Ok(())
    }

    /// An error etcd ended the watch with.
    fn handle_error(
        &mut self,
        grpc_code: i32,
        message: String,
    ) -> std::result::Result<(), Failure> {
        if refusal::is_invalid_token(grpc_code, &message) {
            self.inner.client.forget_token();
            return Err(Failure::Retry("the auth token expired".into()));
        }
        match grpc_code {
            code::UNAVAILABLE | code::INTERNAL => Err(Failure::Retry(message)),
            other => Err(Failure::Fatal(refusal::classify_code(
                other,
                &message,
                "etcd watch",
                200,
            ))),
        }
    }

    fn handle(&mut self, result: WatchResponse) -> std::result::Result<(), Failure> {
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
