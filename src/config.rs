//! [`Config`] and [`Backend`].

use std::time::Duration;

use crate::{Error, Result};

/// Which store a [`crate::create_store`] call talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// The embedded in-process store (`memory://`). Always built.
    Memory,
    /// HashiCorp Consul's KV store over its HTTP API (`consul://host:port`).
    /// Needs the `consul` feature (`consul+https://`: and `tls`).
    Consul,
    /// etcd v3, over its gRPC API or its JSON gateway
    /// ([`Config::etcd_transport`]; `etcd://host:port`). Needs the
    /// `etcd` feature (`etcd+https://`: and `tls`).
    Etcd,
    /// Redis 7 (`redis://[user:password@]host:port[/db]`). Needs the `redis`
    /// feature (`rediss://`: and `tls`).
    Redis,
    /// The durable embedded store in one file (`file:///path/store.redb`);
    /// its one endpoint is the file's path. Needs the `file` feature.
    File,
    /// Apache ZooKeeper 3.6+ (`zk://host:port[,host:port...][/chroot]`;
    /// the last endpoint may end with the chroot). Needs the `zookeeper`
    /// feature.
    ZooKeeper,
}

impl Backend {
    /// The backend's URL scheme and display name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Consul => "consul",
            Backend::Etcd => "etcd",
            Backend::File => "file",
            Backend::Redis => "redis",
            Backend::ZooKeeper => "zk",
        }
    }
}

/// Settings shared by every backend. Build with `Config::default()` and the
/// `with_*` setters, or from the query string of a [`crate::connect`] URL.
///
/// ```
/// use std::time::Duration;
/// let config = kvmesh::Config::default().with_timeout(Duration::from_secs(3));
/// assert_eq!(config.timeout, Duration::from_secs(3));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Per-request timeout (not applied to a watch's long poll). Default 10 s.
    pub timeout: Duration,
    /// How long a lock outlives a holder that stopped renewing it (Consul
    /// session TTL, etcd lease TTL). Default 15 s. The memory store ignores it:
    /// its holders live in the same process and release on drop.
    pub lock_ttl: Duration,
    /// How long a watch's connection may stay silent before it is opened
    /// again, resuming where it was (nothing lost or repeated). An idle
    /// watch costs about one request per period (on Consul, at most one a
    /// minute). Default 5 minutes.
    pub stall_timeout: Duration,
    /// Memory and file stores only: how many past changes are kept for
    /// watches that resume with [`crate::WatchOptions::after`] or fall
    /// behind (on disk too, for the file store). Default 10,000.
    pub history: usize,
    /// Memory and file stores only: the largest value it accepts (the file
    /// store takes at most 1 GiB whatever this says), so that tests on
    /// memory refuse what production would ([`crate::Error::ValueTooLarge`]):
    /// Consul's default is 512 KiB, etcd's about 1.5 MiB per request.
    /// Default `None`: no limit. URL: `?max_value_size=512KiB`.
    pub max_value_size: Option<usize>,
    /// Consul ACL token, sent as `X-Consul-Token`. Never logged or shown:
    /// `Debug` prints `<redacted>`.
    pub token: Option<String>,
    /// Consul datacenter (`?dc=`); the agent's own when `None`.
    pub datacenter: Option<String>,
    /// Redis only: the namespace every key kvmesh writes lives under
    /// (`{namespace}:...`, one hash tag). `None`: `kvmesh`. URL:
    /// `?namespace=`.
    pub namespace: Option<String>,
    /// etcd (or Redis ACL) user name, for `/v3/auth/authenticate`.
    pub username: Option<String>,
    /// etcd password. Never logged or shown: `Debug` prints `<redacted>`.
    pub password: Option<String>,
    /// TLS for a network store (`https`); `None`: plain HTTP.
    pub tls: Option<crate::TlsConfig>,
    /// etcd only: how its calls travel. URL: `?transport=grpc` or
    /// `?transport=http`. Default [`EtcdTransport::Grpc`] (with the `grpc`
    /// feature; without it, [`EtcdTransport::Http`]).
    pub etcd_transport: EtcdTransport,
    /// ZooKeeper only: what a read may miss. URL: `?reads=fresh` (the
    /// default) or `?reads=local`.
    pub zookeeper_reads: ZooKeeperReads,
}

/// What a ZooKeeper read (`get`, `get_range`, `lock_holder`) may miss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ZooKeeperReads {
    /// A `sync` goes first, in the same round trip: the read sees every
    /// write that ended before it began (`?reads=fresh`).
    #[default]
    Fresh,
    /// ZooKeeper's own reads, from the server the session is on, which may
    /// lag the leader by a moment: another client's write that just ended
    /// can be missed (a session never goes back in time). About 1.7 times
    /// the reads per second (`?reads=local`).
    Local,
}

/// How the etcd backend reaches etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EtcdTransport {
    /// etcd's v3 JSON gateway over HTTP/1.1 (`?transport=http`): works
    /// through any HTTP/1.1 proxy.
    Http,
    /// etcd's own gRPC API over one HTTP/2 connection per member
    /// (`?transport=grpc`). Needs the `grpc` feature (on by default).
    Grpc,
}

impl Default for EtcdTransport {
    /// gRPC when this build has it, else the JSON gateway.
    fn default() -> Self {
        if cfg!(feature = "grpc") {
            EtcdTransport::Grpc
        } else {
            EtcdTransport::Http
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("timeout", &self.timeout)
            .field("lock_ttl", &self.lock_ttl)
            .field("stall_timeout", &self.stall_timeout)
            .field("history", &self.history)
            .field("max_value_size", &self.max_value_size)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("datacenter", &self.datacenter)
            .field("namespace", &self.namespace)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("etcd_transport", &self.etcd_transport)
            .field("zookeeper_reads", &self.zookeeper_reads)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: Duration::from_secs(10),
            lock_ttl: Duration::from_secs(15),
            stall_timeout: Duration::from_secs(300),
            history: 10_000,
            max_value_size: None,
            token: None,
            datacenter: None,
            namespace: None,
            username: None,
            password: None,
            tls: None,
            etcd_transport: EtcdTransport::default(),
            zookeeper_reads: ZooKeeperReads::default(),
        }
    }
}

impl Config {
    /// Sets the per-request timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the lock TTL.
    #[must_use]
    pub fn with_lock_ttl(mut self, lock_ttl: Duration) -> Self {
        self.lock_ttl = lock_ttl;
        self
    }

    /// Sets how long a silent watch connection is trusted; see
    /// [`Config::stall_timeout`].
    #[must_use]
    pub fn with_stall_timeout(mut self, stall_timeout: Duration) -> Self {
        self.stall_timeout = stall_timeout;
        self
    }

    /// Sets the memory store's history length.
    #[must_use]
    pub fn with_history(mut self, history: usize) -> Self {
        self.history = history;
        self
    }

    /// Sets the memory store's largest value; see [`Config::max_value_size`].
    #[must_use]
    pub fn with_max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = Some(bytes);
        self
    }

    /// Sets the Consul ACL token.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Sets the Consul datacenter.
    #[must_use]
    pub fn with_datacenter(mut self, datacenter: impl Into<String>) -> Self {
        self.datacenter = Some(datacenter.into());
        self
    }

    /// Talks TLS with these settings.
    #[must_use]
    pub fn with_tls(mut self, tls: crate::TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets how the etcd backend reaches etcd.
    #[must_use]
    pub fn with_etcd_transport(mut self, transport: EtcdTransport) -> Self {
        self.etcd_transport = transport;
        self
    }

    /// Sets what a ZooKeeper read may miss.
    #[must_use]
    pub fn with_zookeeper_reads(mut self, reads: ZooKeeperReads) -> Self {
        self.zookeeper_reads = reads;
        self
    }

    /// Sets the etcd user name and password.
    #[must_use]
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }

    /// The defaults, with credentials from the environment:
    /// `CONSUL_HTTP_TOKEN`, `ETCD_USERNAME` and `ETCD_PASSWORD`.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Config {
            token: var("CONSUL_HTTP_TOKEN"),
            username: var("ETCD_USERNAME"),
            password: var("ETCD_PASSWORD"),
            ..Config::default()
        }
    }

    /// Refuses settings no store can work with: a zero timeout or lock TTL,
    /// a stall timeout under a second.
    pub(crate) fn validate(&self) -> Result<()> {
        let refuse = |what: &str| Err(Error::InvalidArgument(what.into()));
        if self.timeout.is_zero() {
            return refuse("timeout must be longer than zero");
        }
        if self.lock_ttl.is_zero() {
            return refuse("lock_ttl must be longer than zero");
        }
        if self.stall_timeout < Duration::from_secs(1) {
            return refuse("stall_timeout must be at least 1s");
        }
        Ok(())
    }
}
