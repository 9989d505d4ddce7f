//! A scripted HTTP/1.1 server on loopback, only for faults a real server
//! cannot produce on demand (an index that goes backwards, ...). Each request
//! is answered by a handler from its request line; every request line is kept.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One scripted answer.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Held back this long first (a blocking query that waits).
    pub delay: Duration,
}

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
        let handler = Arc::new(handler);
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (handler, seen) = (handler.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    loop {
                        let mut chunk = [0u8; 4096];
                        let Ok(n) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                        // Requests here have no body: the head ends the request.
                        while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                            buffer.drain(..end + 4);
                            let line = head.lines().next().unwrap_or("").to_owned();
                            let n = {
                                let mut seen = seen.lock().unwrap();
                                seen.push(line.clone());
                                seen.len() - 1
                            };
                            let answer = handler(n, &line);
                            tokio::time::sleep(answer.delay).await;
                            let mut response = format!(
                                "HTTP/1.1 {} X\r\ncontent-length: {}\r\n",
                                answer.status,
                                answer.body.len()
                            );
                            for (name, value) in &answer.headers {
                                response.push_str(&format!("{name}: {value}\r\n"));
                            }
                            response.push_str("\r\n");
                            response.push_str(&answer.body);
                            if socket.write_all(response.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        FakeServer { addr, requests }
    }

    pub fn request_lines(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}
