//! One `POST /v3/watch` stream: newline-delimited JSON, parsed by line (not
//! by chunk) into the watch's messages.

use std::collections::VecDeque;

use async_trait::async_trait;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;

use crate::backend::etcd::refusal;
use crate::backend::etcd::transport::{WatchChannel, WatchMessage, broken};
use crate::backend::etcd::wire::WatchResponse;
use crate::{Error, Result};

/// A watch reply line larger than this is refused.
const MAX_LINE: usize = 64 * 1024 * 1024;

/// One line of a watch stream.
#[derive(Debug, Deserialize, PartialEq)]
struct WatchLine {
    #[serde(default)]
    result: Option<WatchResponse>,
    #[serde(default)]
    error: Option<StreamError>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct StreamError {
    #[serde(default, alias = "code")]
    grpc_code: i32,
    #[serde(default)]
    message: String,
}

/// An open watch stream.
pub(super) struct GatewayWatch {
    body: Incoming,
    /// The start of a line whose end has not arrived.
    buffer: Vec<u8>,
    /// Messages read and not yet handed out.
    ready: VecDeque<WatchMessage>,
}

impl GatewayWatch {
    pub(super) fn new(body: Incoming) -> Self {
        GatewayWatch {
            body,
            buffer: Vec::new(),
            ready: VecDeque::new(),
        }
    }

    /// Queues every whole line of `text`; returns how many bytes they take.
    fn read_lines(&mut self, text: &[u8]) -> Result<usize> {
        let mut read = 0;
        while let Some(end) = text[read..].iter().position(|b| *b == b'\n') {
            self.read_line(&text[read..read + end])?;
            read += end + 1;
        }
        Ok(read)
    }

    fn read_line(&mut self, line: &[u8]) -> Result<()> {
        let line = line.trim_ascii();
        if line.is_empty() {
            return Ok(());
        }
        let parsed: WatchLine = serde_json::from_slice(line).map_err(|e| {
            Error::undecodable(
                format!("etcd watch line {:?}", crate::http::excerpt(line)),
                e,
            )
        })?;
        if let Some(error) = parsed.error {
            self.ready.push_back(WatchMessage::Error {
                code: error.grpc_code,
                message: error.message,
            });
        } else if let Some(result) = parsed.result {
            self.ready.push_back(WatchMessage::Response(result));
        }
        Ok(())
    }
}

#[async_trait]
impl WatchChannel for GatewayWatch {
    async fn next(&mut self) -> Result<Option<WatchMessage>> {
        loop {
            if let Some(message) = self.ready.pop_front() {
                return Ok(Some(message));
            }
            let frame = match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(broken(format!("the stream broke: {e}"))),
                Some(Ok(frame)) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            // A frame usually holds whole lines: they are read where they
            // are, and only a line's unfinished start is kept for the next.
            let mut buffer = std::mem::take(&mut self.buffer);
            if buffer.is_empty() {
                let read = self.read_lines(&data)?;
                buffer.extend_from_slice(&data[read..]);
            } else {
                buffer.extend_from_slice(&data);
                let read = self.read_lines(&buffer)?;
                buffer.drain(..read);
            }
            self.buffer = buffer;
            if self.buffer.len() > MAX_LINE {
                return Err(Error::malformed(format!(
                    "an etcd watch line is longer than {MAX_LINE} bytes"
                )));
            }
        }
    }
}

/// The error of a watch stream the server would not open.
pub(super) async fn refused(response: hyper::Response<Incoming>) -> Error {
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
    refusal::classify(&reply, "etcd watch")
}
