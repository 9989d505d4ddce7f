//! The store's ZooKeeper session: made on first use, made anew once the
//! server expired it, and every call run on it as ZooKeeper allows: a read
//! is sent again after a lost connection or an expired session, until the
//! call's timeout; a write of a key that lost its connection is
//! [`Error::OutcomeUnknown`] (one the expired session refused goes again).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;
use zookeeper_client as zk;

use crate::{Error, Result};

/// A digest identity (`user:password`): sent once per session, never
/// printed.
#[derive(Clone)]
pub(crate) struct Digest {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Digest")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What a session is made with.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// `host:port,host:port`.
    pub(crate) servers: String,
    /// Each call's limit, retries included.
    pub(crate) timeout: Duration,
    /// How long the server keeps the session (and its ephemeral nodes:
    /// locks) once the client stops answering.
    pub(crate) session_timeout: Duration,
    pub(crate) digest: Option<Digest>,
    /// Reads sync first ([`crate::ZooKeeperReads::Fresh`]).
    pub(crate) fresh_reads: bool,
}

/// The session, shared by every call of the store.
pub(crate) struct Session {
    settings: Settings,
    current: RwLock<Option<zk::Client>>,
    /// One connect at a time.
    connecting: Mutex<()>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Whether a call may be sent again after its connection broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Reads, and writes nobody could tell from a second run of them.
    Safe,
    /// Every write of a key: a second run of a plain put or delete would
    /// undo a write made between the two, and one of a conditional write
    /// would misreport the first's result.
    Unsafe,
}

impl Session {
    /// Whether reads sync first ([`super::nodes::fresh`]).
    pub(crate) fn fresh_reads(&self) -> bool {
        self.settings.fresh_reads
    }

    pub(crate) fn new(settings: Settings) -> Session {
        Session {
            settings,
            current: RwLock::new(None),
            connecting: Mutex::new(()),
        }
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The live client, connecting first when there is none (or the one
    /// there was ended: expired, closed, refused).
    pub(crate) async fn client(&self) -> Result<zk::Client> {
        if let Some(client) = self.current.read().await.as_ref()
            && !client.state().is_terminated()
        {
            return Ok(client.clone());
        }
        let _one = self.connecting.lock().await;
        if let Some(client) = self.current.read().await.as_ref()
            && !client.state().is_terminated()
        {
            return Ok(client.clone());
        }
        let client = self.connect().await?;
        *self.current.write().await = Some(client.clone());
        Ok(client)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(servers = %self.settings.servers))]
    async fn connect(&self) -> Result<zk::Client> {
        let mut connector = zk::Client::connector()
            .with_session_timeout(self.settings.session_timeout)
            .with_connection_timeout(self.settings.timeout);
        if let Some(digest) = &self.settings.digest {
            let identity = format!("{}:{}", digest.user, digest.password);
            connector = connector.with_auth("digest", identity.as_bytes());
        }
        let connecting = connector.connect(&self.settings.servers);
        match tokio::time::timeout(self.settings.timeout, connecting).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(error)) => Err(match error {
                zk::Error::AuthFailed | zk::Error::NoAuth => Error::PermissionDenied(format!(
                    "ZooKeeper at {} refused the session's credentials",
                    self.settings.servers
                )),
                other => Error::Unreachable {
                    message: format!(
                        "no ZooKeeper server answered ({}): {other}",
                        self.settings.servers
                    ),
                    source: Some(std::sync::Arc::new(other)),
                },
            }),
            Err(_) => Err(Error::Unreachable {
                message: format!(
                    "no ZooKeeper server answered within {:?} ({})",
                    self.settings.timeout, self.settings.servers
                ),
                source: None,
            }),
        }
    }

    /// Runs `call` on the live client, again as [`Repeat`] allows, until
    /// the store's timeout. `call` turns the answers it expects (no node, a
    /// version that moved) into values; an error it returns is a failure.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        operation: &'static str,
        repeat: Repeat,
        call: F,
    ) -> Result<T>
    where
        F: Fn(zk::Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, zk::Error>>,
    {
        let deadline = Instant::now() + self.settings.timeout;
        let mut pause = Duration::from_millis(10);
        loop {
            let client = tokio::time::timeout_at(deadline, self.client())
                .await
                .map_err(|_| self.timed_out(operation))??;
            let answer = tokio::time::timeout_at(deadline, call(client))
                .await
                .map_err(|_| self.timed_out(operation))?;
            let error = match answer {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            match error {
                // Never applied: the server refuses calls of an expired
                // session. The next try makes a new one.
                zk::Error::SessionExpired | zk::Error::ClientClosed => {}
                // The connection went (a clean close is ConnectionLoss; a
                // reset, a failed write or a silent server is the client's
                // own Custom error, given to every call in flight), or the
                // session moved to another server under the call.
                error if lost_connection(&error) && repeat == Repeat::Safe => {}
                error if lost_connection(&error) => {
                    return Err(Error::OutcomeUnknown {
                        operation,
                        message: format!(
                            "the connection to ZooKeeper ({}) broke with the call on it",
                            self.settings.servers
                        ),
                        source: Some(std::sync::Arc::new(error)),
                    });
                }
                other => return Err(failure(operation, other)),
            }
            if Instant::now() + pause >= deadline {
                return Err(self.timed_out(operation));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    fn timed_out(&self, operation: &'static str) -> Error {
        Error::Timeout {
            operation,
            after: self.settings.timeout,
        }
    }
}

/// Whether `error` says the connection went with the call on it (sent or
/// not), rather than the server answering it.
fn lost_connection(error: &zk::Error) -> bool {
    matches!(
        error,
        zk::Error::ConnectionLoss | zk::Error::SessionMoved | zk::Error::Custom(_)
    )
}

/// A ZooKeeper error no caller expected, in kvmesh's terms.
pub(crate) fn failure(operation: &'static str, error: zk::Error) -> Error {
    match error {
        zk::Error::NoAuth | zk::Error::AuthFailed => Error::PermissionDenied(format!(
            "{operation}: ZooKeeper refused it to this session's identity ({error})"
        )),
        zk::Error::BadArguments(why) => Error::InvalidArgument(format!("{operation}: {why}")),
        zk::Error::Throttled => Error::Overloaded {
            operation,
            message: "ZooKeeper throttled the call".to_owned(),
        },
        zk::Error::Unimplemented => Error::Unsupported {
            backend: "zookeeper",
            what: format!(
                "{operation}: the server does not implement it (kvmesh needs ZooKeeper 3.6 or later)"
            ),
        },
        zk::Error::ConnectionLoss
        | zk::Error::SessionMoved
        | zk::Error::Custom(_)
        | zk::Error::NoHosts
        | zk::Error::Timeout
        | zk::Error::SessionExpired
        | zk::Error::ClientClosed => Error::Unreachable {
            message: format!("{operation}: {error}"),
            source: Some(std::sync::Arc::new(error)),
        },
        other => Error::MalformedReply {
            message: format!("{operation}: ZooKeeper answered {other}"),
            source: Some(std::sync::Arc::new(other)),
        },
    }
}
