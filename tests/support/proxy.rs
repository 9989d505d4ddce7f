//! A TCP proxy on loopback between a client and a real server, for faults:
//! `cut()` drops every connection and refuses new ones until `restore()`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct FaultProxy {
    pub addr: String,
    open: Arc<AtomicBool>,
    /// Bumped by `cut()`: live connections of older generations close.
    generation: watch::Sender<u64>,
}

impl FaultProxy {
    /// Forwards a loopback port to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr").to_string();
        let open = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0u64);
        let (upstream, accepting, generations) =
            (upstream.to_owned(), open.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    drop(client); // refused: closed at once
                    continue;
                }
                let mut cut = generations.subscribe();
                let born = *cut.borrow_and_update();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = async {
                            while cut.changed().await.is_ok() {
                                if *cut.borrow() != born {
                                    return;
                                }
                            }
                        } => {}
                    }
                });
            }
        });
        FaultProxy {
            addr,
            open,
            generation,
        }
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
}
