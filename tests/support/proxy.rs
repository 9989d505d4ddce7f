//! A TCP proxy on loopback between a client and a real server, for faults:
//! - `cut()` drops every connection and refuses new ones until `restore()`;
//! - `stall()` freezes every live connection (open, silent, forwarding
//!   nothing) while new connections work;
//! - `partition()` is a network partition: every live connection freezes
//!   and new ones are accepted but forward nothing (packets dropped, no
//!   reset), until `heal()` closes them all and forwards again;
//! - `cut_next_replies(n)`: the next `n` connections forward their first reply
//!   only in part, then close: an HTTP/1.1 reply up to its head and one byte
//!   of its body; on HTTP/2 (gRPC) every frame before the first DATA frame
//!   of a request's stream.
//!
//! `upstream_ports()` names the proxy's own ends of its server connections,
//! so a test can count what the *server* still holds open
//! (`support::server_side_connections`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct FaultProxy {
    pub addr: String,
    open: Arc<AtomicBool>,
    /// While set, new connections are held open and forward nothing.
    partitioned: Arc<AtomicBool>,
    /// Bumped by `cut()`: live connections of older generations close.
    generation: watch::Sender<u64>,
    /// Bumped by `stall()`: live connections of older epochs freeze.
    stalls: watch::Sender<u64>,
    replies_to_cut: Arc<AtomicUsize>,
    upstream_ports: Arc<Mutex<Vec<u16>>>,
}

impl FaultProxy {
    /// Forwards a loopback port to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr").to_string();
        let open = Arc::new(AtomicBool::new(true));
        let partitioned = Arc::new(AtomicBool::new(false));
        let replies_to_cut = Arc::new(AtomicUsize::new(0));
        let (generation, _) = watch::channel(0u64);
        let (stalls, _) = watch::channel(0u64);
        let upstream_ports = Arc::new(Mutex::new(Vec::new()));
        let dropping = partitioned.clone();
        let (upstream, accepting, generations, stall_epochs, cut_tickets, ports) = (
            upstream.to_owned(),
            open.clone(),
            generation.clone(),
            stalls.clone(),
            replies_to_cut.clone(),
            upstream_ports.clone(),
        );
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    drop(client); // refused: closed at once
                    continue;
                }
                let truncate = cut_tickets
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                let mut cut = generations.subscribe();
                let born = *cut.borrow_and_update();
                if dropping.load(Ordering::SeqCst) {
                    // Accepted, never answered, until the next generation.
                    tokio::spawn(async move {
                        while cut.changed().await.is_ok() && *cut.borrow() == born {}
                        drop(client);
                    });
                    continue;
                }
                let mut stall = stall_epochs.subscribe();
                stall.borrow_and_update();
                let upstream = upstream.clone();
                let ports = ports.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    if let Ok(local) = server.local_addr() {
                        ports.lock().expect("ports").push(local.port());
                    }
                    let mut client = client;
                    let cut_off = async move {
                        while cut.changed().await.is_ok() {
                            if *cut.borrow() != born {
                                return;
                            }
                        }
                        std::future::pending::<()>().await
                    };
                    tokio::pin!(cut_off);
                    let stalled = {
                        let (mut client_in, mut client_out) = client.split();
                        let (mut server_in, mut server_out) = server.split();
                        tokio::select! {
                            _ = pipe(&mut client_in, &mut server_out, false) => false,
                            _ = pipe(&mut server_in, &mut client_out, truncate) => false,
                            _ = &mut cut_off => false,
                            _ = stall.changed() => true,
                        }
                    };
                    if stalled {
                        // Hold both sockets open, forwarding nothing.
                        cut_off.await;
                    }
                    drop((client, server));
                });
            }
        });
        FaultProxy {
            addr,
            open,
            partitioned,
            generation,
            stalls,
            replies_to_cut,
            upstream_ports,
        }
    }

    /// The local ports of every connection the proxy opened to the server.
    pub fn upstream_ports(&self) -> Vec<u16> {
        self.upstream_ports.lock().expect("ports").clone()
    }

    /// Drops every live connection and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// Freezes every live connection: it stays open and forwards nothing,
    /// in either direction, until `cut()`. New connections work.
    pub fn stall(&self) {
        self.stalls.send_modify(|s| *s += 1);
    }

    /// A partition: every live connection freezes, new ones are accepted
    /// and forward nothing, until [`FaultProxy::heal`].
    pub fn partition(&self) {
        self.partitioned.store(true, Ordering::SeqCst);
        self.stall();
    }

    /// Ends a partition: the frozen connections close (as a reset would
    /// after one), new ones forward again.
    pub fn heal(&self) {
        self.partitioned.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// The next `n` connections accepted forward their first reply only in
    /// part (see the module's doc), then close.
    pub fn cut_next_replies(&self, n: usize) {
        self.replies_to_cut.store(n, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either ends; with `truncate`, stops before
/// the first reply's body is through: an HTTP/1.1 reply is forwarded up to
/// its head and one byte of its body; an HTTP/2 connection's frames are
/// forwarded up to the first DATA frame of a request's stream, which is
/// dropped (the server answered: the request was applied, its reply lost).
async fn pipe(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    truncate: bool,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    let mut seen = Vec::new();
    let mut forwarded = 0;
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if truncate {
            seen.extend_from_slice(&buffer[..n]);
            let (keep, done) = reply_cut(&seen);
            let _ = to.write_all(&seen[forwarded..keep.max(forwarded)]).await;
            forwarded = keep.max(forwarded);
            if done {
                let _ = to.flush().await;
                return;
            }
            continue;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// How much of a reply's first bytes a cut forwards, and whether it has
/// reached the cut.
fn reply_cut(seen: &[u8]) -> (usize, bool) {
    if seen.len() < 5 {
        return (0, false);
    }
    if seen.starts_with(b"HTTP/") {
        return match seen.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(head_end) => ((head_end + 4 + 1).min(seen.len()), true),
            None => (0, false),
        };
    }
    // HTTP/2: whole frames (9-byte head: length, type, flags, stream id).
    let mut at = 0;
    while seen.len() >= at + 9 {
        let head = &seen[at..at + 9];
        let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        if head[3] == 0 && stream != 0 {
            return (at, true);
        }
        if seen.len() < at + 9 + length {
            break;
        }
        at += 9 + length;
    }
    (at, false)
}
