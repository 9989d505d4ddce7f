//! The connection to Redis (redis-rs's `ConnectionManager`, which
//! reconnects by itself), the layout's scripts, and errors in kvmesh's terms.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, FromRedisValue, RedisError, Script};
use tokio::sync::OnceCell;

use super::epoch::Epoch;
use crate::{Error, Result};

macro_rules! script {
    ($name:literal) => {
        Script::new(concat!(
            include_str!("lua/prelude.lua"),
            "\n",
            include_str!(concat!("lua/", $name, ".lua"))
        ))
    };
}

/// Every script of the layout, loaded once per server (EVALSHA, with EVAL
/// the first time or after a restart: redis-rs does that).
pub(super) struct Scripts {
    pub(super) put: Script,
    pub(super) delete: Script,
    pub(super) delete_range: Script,
    pub(super) atomic_put: Script,
    pub(super) atomic_delete: Script,
    pub(super) txn: Script,
    pub(super) state: Script,
    pub(super) lock_acquire: Script,
    pub(super) lock_renew: Script,
    pub(super) lock_release: Script,
    pub(super) sweep: Script,
    /// Without the prelude: answers its epoch check.
    pub(super) raise: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            put: script!("put"),
            delete: script!("delete"),
            delete_range: script!("delete_range"),
            atomic_put: script!("atomic_put"),
            atomic_delete: script!("atomic_delete"),
            txn: script!("txn"),
            state: script!("state"),
            lock_acquire: script!("lock_acquire"),
            lock_renew: script!("lock_renew"),
            lock_release: script!("lock_release"),
            sweep: script!("sweep"),
            raise: Script::new(include_str!("lua/raise.lua")),
        }
    }
}

/// One Redis server and the namespace kvmesh uses in it.
pub(super) struct Client {
    client: redis::Client,
    manager: OnceCell<ConnectionManager>,
    /// `host:port`, for errors (never the password).
    pub(super) endpoint: String,
    /// `{namespace}:`: every key kvmesh writes starts with it.
    pub(super) prefix: String,
    /// The change log's length and the tombstones kept, for the scripts.
    pub(super) history: usize,
    pub(super) timeout: Duration,
    pub(super) scripts: Scripts,
    pub(super) epoch: Epoch,
}

impl Client {
    pub(super) fn new(
        client: redis::Client,
        endpoint: String,
        namespace: &str,
        history: usize,
        timeout: Duration,
    ) -> Self {
        Client {
            client,
            manager: OnceCell::new(),
            endpoint,
            prefix: format!("{{{namespace}}}:"),
            history: history.max(1),
            timeout,
            scripts: Scripts::new(),
            epoch: Epoch::default(),
        }
    }

    /// The hash that holds `key`'s value and version.
    pub(super) fn hash_key(&self, key: &str) -> String {
        format!("{}k:{key}", self.prefix)
    }

    pub(super) fn log_key(&self) -> String {
        format!("{}log", self.prefix)
    }

    /// The store's version counter now (0 for a new store).
    pub(super) async fn revision(&self) -> Result<u64> {
        let get = redis::cmd("GET").arg(format!("{}rev", self.prefix)).clone();
        let revision: Option<u64> = self.command("watch", &get).await?;
        let revision = revision.unwrap_or(0);
        self.epoch.saw(revision);
        Ok(revision)
    }

    /// The shared connection, made on first use.
    pub(super) async fn connection(&self) -> Result<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(2);
        self.manager
            .get_or_try_init(|| async {
                ConnectionManager::new_with_config(self.client.clone(), config).await
            })
            .await
            .cloned()
            .map_err(|e| self.error("connecting", e))
    }

    /// A connection of its own, for the watches' blocking reads.
    pub(super) async fn blocking_connection(
        &self,
        block: Duration,
    ) -> Result<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(block + self.timeout));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.error("connecting", e))
    }

    /// Runs `script` (a read, or a write nobody could tell from a second
    /// run of it) with the layout's arguments, then `args`.
    pub(super) async fn run<T: FromRedisValue>(
        &self,
        operation: &'static str,
        script: &Script,
        args: &[&[u8]],
    ) -> Result<T> {
        self.invoke(operation, script, args, false).await
    }

    /// [`Client::run`] for a write of a key: one whose connection broke
    /// once it may have been sent is [`Error::OutcomeUnknown`] (redis-rs
    /// sends nothing again by itself).
    pub(super) async fn run_write<T: FromRedisValue>(
        &self,
        operation: &'static str,
        script: &Script,
        args: &[&[u8]],
    ) -> Result<T> {
        self.invoke(operation, script, args, true).await
    }

    async fn invoke<T: FromRedisValue>(
        &self,
        operation: &'static str,
        script: &Script,
        args: &[&[u8]],
        write: bool,
    ) -> Result<T> {
        let mut conn = self.connection().await?;
        let span = tracing::debug_span!("redis_script", operation, endpoint = %self.endpoint);
        let _entered = span.enter();
        // Twice at most: once more after re-establishing a lost epoch.
        let mut reset = false;
        loop {
            let epoch = match self.epoch.current() {
                Some(epoch) => epoch,
                None => self.raise(&mut conn, operation).await?,
            };
            let mut invocation = script.prepare_invoke();
            invocation
                .arg(&self.prefix)
                .arg(self.history)
                .arg(self.history.saturating_mul(10).max(1_000))
                .arg(&*epoch);
            for arg in args {
                invocation.arg(*arg);
            }
            match invocation.invoke_async(&mut conn).await {
                Err(e) if e.code() == Some("KVMESH_EPOCH") && !reset => {
                    tracing::warn!(endpoint = %self.endpoint, "the Redis server lost the store's data (its epoch changed); raising the version counter and re-reading every watch");
                    let revision = self.raise_revision(&mut conn, operation).await?;
                    self.epoch.reset(revision);
                    reset = true;
                }
                Err(e) if write && broke_after_sending(&e) => {
                    return Err(Error::OutcomeUnknown {
                        operation,
                        message: format!("the connection to redis {} broke: {e}", self.endpoint),
                        source: Some(Arc::new(e)),
                    });
                }
                other => return other.map_err(|e| self.error(operation, e)),
            }
        }
    }

    /// Learns the store's epoch (setting one if there is none) and raises
    /// the counter to what this client saw; returns the epoch.
    async fn raise(
        &self,
        conn: &mut ConnectionManager,
        operation: &'static str,
    ) -> Result<std::sync::Arc<str>> {
        let floor = self.epoch.highest_seen().to_string();
        let (epoch, revision): (String, u64) = self
            .scripts
            .raise
            .arg(&self.prefix)
            .arg(floor)
            .arg(crate::backoff::random_token())
            .invoke_async(conn)
            .await
            .map_err(|e| self.error(operation, e))?;
        self.epoch.saw(revision);
        Ok(self.epoch.adopt(epoch))
    }

    /// [`Client::raise`] after a loss: returns the counter now.
    async fn raise_revision(
        &self,
        conn: &mut ConnectionManager,
        operation: &'static str,
    ) -> Result<u64> {
        self.raise(conn, operation).await?;
        Ok(self.epoch.highest_seen())
    }

    /// Runs one plain command.
    pub(super) async fn command<T: FromRedisValue>(
        &self,
        operation: &'static str,
        command: &redis::Cmd,
    ) -> Result<T> {
        let mut conn = self.connection().await?;
        command
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(operation, e))
    }

    /// `e` in kvmesh's terms, naming the endpoint (never the password).
    pub(super) fn error(&self, operation: &'static str, e: RedisError) -> Error {
        let message = format!("{operation} on redis {}: {e}", self.endpoint);
        let refused = matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
            || matches!(e.kind(), redis::ErrorKind::AuthenticationFailed);
        if refused {
            return Error::PermissionDenied(message);
        }
        if let Some(failure) = super::tls::failure(&e) {
            return Error::Tls {
                message: format!("{operation} on redis {}: {failure}", self.endpoint),
            };
        }
        if e.is_timeout() {
            return Error::Timeout {
                operation,
                after: self.timeout,
            };
        }
        if matches!(e.kind(), redis::ErrorKind::Parse) {
            // An HTTP server (Consul, etcd) answers a Redis command with
            // text the parser cannot read: say so in one line.
            return Error::MalformedReply {
                message: format!(
                    "{operation} on redis {}: the server there does not speak the Redis protocol (is it another kind of server?)",
                    self.endpoint
                ),
                source: None,
            };
        }
        if operation == "connecting" && e.is_connection_dropped() && !e.is_connection_refusal() {
            // A server that cuts a Redis client off at once (etcd's
            // multiplexed port does) is most likely not Redis.
            return Error::Unreachable {
                message: format!(
                    "{operation} on redis {}: the server there closed the connection at once (is it a Redis server?)",
                    self.endpoint
                ),
                source: Some(Arc::new(e)),
            };
        }
        if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
            return Error::Unreachable {
                message,
                source: Some(Arc::new(e)),
            };
        }
        Error::MalformedReply {
            message,
            source: Some(Arc::new(e)),
        }
    }
}

/// Whether `e` says the connection went with a command on it, which the
/// server may have run (a refused connection ran nothing; a timeout is
/// [`Error::Timeout`], as uncertain).
fn broke_after_sending(e: &RedisError) -> bool {
    (e.is_io_error() || e.is_connection_dropped())
        && !e.is_connection_refusal()
        && !e.is_timeout()
        && super::tls::failure(e).is_none()
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}
