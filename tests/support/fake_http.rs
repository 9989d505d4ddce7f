//! A scripted HTTP/1.1 server on loopback, only for faults a real server
//! cannot produce on demand (an index that goes backwards, a truncated or
//! endless reply, ...). Each request is answered by a handler from its
//! request line; every request line is kept.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How an answer's body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `content-length` of the body: a normal reply.
    Exact,
    /// A `content-length` claiming this many bytes, then only the body.
    Claims(u64),
    /// `transfer-encoding: chunked`, 64 KiB chunks forever.
    Endless,
    /// `transfer-encoding: chunked`, the body in chunks of this many bytes
    /// a millisecond apart (so that they arrive apart), then the
    /// connection held open: a stream whose lines come in pieces.
    Pieces(usize),
}

/// One scripted answer.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Held back this long first (a blocking query that waits).
    pub delay: Duration,
    pub framing: Framing,
}

impl Answer {
    /// A normal reply.
    pub fn new(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
            framing: Framing::Exact,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }

    pub fn framing(mut self, framing: Framing) -> Answer {
        self.framing = framing;
        self
    }
}

type Handler = dyn Fn(usize, &str) -> Answer + Send + Sync;

pub struct FakeServer {
    pub addr: String,
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl FakeServer {
    /// Serves `handler(n, request_line)` (n counts from 0) until the test ends.
    pub async fn start<F>(handler: F) -> FakeServer
    where
        F: Fn(usize, &str) -> Answer + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr").to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, handler.clone(), seen.clone()));
            }
        });
        FakeServer { addr, requests }
    }

    pub fn request_lines(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve(mut socket: TcpStream, handler: Arc<Handler>, seen: Arc<Mutex<Vec<String>>>) {
    let mut buffer = Vec::new();
    loop {
        // One whole request: the head, then `content-length` bytes of body.
        let request = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                let body_len = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buffer.len() >= end + 4 + body_len {
                    buffer.drain(..end + 4 + body_len);
                    break head;
                }
            }
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let line = request.lines().next().unwrap_or("").to_owned();
        let n = {
            let mut seen = seen.lock().unwrap();
            seen.push(line.clone());
            seen.len() - 1
        };
        let answer = handler(n, &line);
        tokio::time::sleep(answer.delay).await;
        let framing = match answer.framing {
            Framing::Exact => format!("content-length: {}\r\n", answer.body.len()),
            Framing::Claims(n) => format!("content-length: {n}\r\n"),
            Framing::Endless | Framing::Pieces(_) => "transfer-encoding: chunked\r\n".to_owned(),
        };
        let mut response = format!("HTTP/1.1 {} X\r\n{framing}", answer.status);
        for (name, value) in &answer.headers {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n");
        if answer.framing == Framing::Exact || matches!(answer.framing, Framing::Claims(_)) {
            response.push_str(&answer.body);
        }
        if socket.write_all(response.as_bytes()).await.is_err() {
            return;
        }
        if let Framing::Pieces(size) = answer.framing {
            for piece in answer.body.as_bytes().chunks(size.max(1)) {
                let head = format!("{:x}\r\n", piece.len());
                let sent = socket.write_all(head.as_bytes()).await.is_ok()
                    && socket.write_all(piece).await.is_ok()
                    && socket.write_all(b"\r\n").await.is_ok();
                if !sent {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(Duration::from_secs(600)).await;
            return;
        }
        if answer.framing == Framing::Endless {
            let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
            while socket.write_all(chunk.as_bytes()).await.is_ok() {}
            return;
        }
    }
}
