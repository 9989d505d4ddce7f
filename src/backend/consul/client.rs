//! Consul's KV and session endpoints as typed calls.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};

use super::entries::Entries;
use super::keys::{kv_path, query_value};
use super::wire::{self, SessionCreate, SessionCreated};
use crate::http::{HttpClient, HttpReply, HttpRequest};
use crate::{Error, Result};

/// How long Consul may hold a blocking query beyond its `wait` (it adds up
/// to wait/16 of jitter), plus the request timeout for the network.
pub(super) fn long_poll_timeout(wait: Duration, timeout: Duration) -> Duration {
    wait + wait / 16 + timeout
}

/// A KV read: the entries and the `X-Consul-Index` they were read at.
#[derive(Debug)]
pub(super) struct Listing {
    pub(super) entries: Entries,
    pub(super) index: u64,
}

/// `api.LockFlagValue` of Consul's Go client: the flags of a lock key.
const LOCK_FLAG_VALUE: u64 = 0x2ddc_cbc0_58a5_0c18;

/// `api.SemaphoreFlagValue`: the flags of a semaphore's keys.
pub(super) const SEMAPHORE_FLAG_VALUE: u64 = 0xe0f6_9a2b_aa41_4de0;

/// A conditional or lock-related write on one key.
#[derive(Debug, Clone, Copy)]
pub(super) enum Write<'a> {
    Plain,
    Cas(u64),
    Acquire(&'a str),
    /// `Acquire` with the flags of Consul's own `api.Lock`, so that its
    /// users (`consul lock`, Go clients) wait for a kvmesh holder instead
    /// of failing with a lock conflict.
    Lock(&'a str),
    /// `Acquire` with the flags of `api.Semaphore`: a semaphore contender.
    Contend(&'a str),
    /// `Cas` with the flags of `api.Semaphore`: its `.lock` key.
    SemaphoreCas(u64),
    Release(&'a str),
}

#[derive(Debug)]
pub(super) struct ConsulClient {
    pub(super) http: HttpClient,
    datacenter: Option<String>,
    timeout: Duration,
}

impl ConsulClient {
    pub(super) fn new(http: HttpClient, datacenter: Option<String>, timeout: Duration) -> Self {
        ConsulClient {
            http,
            datacenter,
            timeout,
        }
    }

    /// `base` plus `params` (already escaped) plus the datacenter.
    pub(super) fn path(&self, base: String, params: &[&str]) -> String {
        let mut path = base;
        let mut separator = '?';
        for param in params.iter().filter(|p| !p.is_empty()) {
            path.push(separator);
            path.push_str(param);
            separator = '&';
        }
        if let Some(dc) = &self.datacenter {
            let _ = write!(path, "{separator}dc={}", query_value(dc));
        }
        path
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        idempotent: bool,
        timeout: Duration,
        operation: &'static str,
    ) -> Result<HttpReply> {
        self.http
            .send(&HttpRequest {
                method,
                path,
                body,
                idempotent,
                timeout,
                operation,
                headers: &[],
                long_lived: false,
            })
            .await
    }

    /// The reply if it is a 200, else the error it means.
    fn expect_ok(reply: HttpReply, operation: &str, key: Option<&str>) -> Result<HttpReply> {
        if reply.status == StatusCode::OK {
            Ok(reply)
        } else {
            Err(wire::classify(&reply, operation, key))
        }
    }

    /// Reads one key (`recurse: false`) or a prefix. A missing key or empty
    /// prefix is an empty listing, with the index Consul still sends.
    /// `block`: `(index, wait)` for a blocking query.
    pub(super) async fn read(
        &self,
        key: &str,
        recurse: bool,
        block: Option<(u64, Duration)>,
    ) -> Result<Listing> {
        let (reply, operation) = self.get(key, recurse, block).await?;
        match reply.status {
            StatusCode::OK => Ok(Listing {
                index: wire::consul_index(&reply)?,
                entries: super::entries::parse(&reply, operation)?,
            }),
            StatusCode::NOT_FOUND => Ok(Listing {
                index: wire::consul_index(&reply)?,
                entries: Entries::default(),
            }),
            _ => Err(wire::classify(&reply, operation, Some(key))),
        }
    }

    /// [`ConsulClient::read`], each entry as Consul sent it (flags and all).
    pub(super) async fn read_entries(
        &self,
        key: &str,
        recurse: bool,
        block: Option<(u64, Duration)>,
    ) -> Result<(Vec<wire::KvEntry>, u64)> {
        let (reply, operation) = self.get(key, recurse, block).await?;
        let index = wire::consul_index(&reply)?;
        match reply.status {
            StatusCode::OK => Ok((reply.json(operation)?, index)),
            StatusCode::NOT_FOUND => Ok((Vec::new(), index)),
            _ => Err(wire::classify(&reply, operation, Some(key))),
        }
    }

    /// `GET /v1/kv/<key>`: the reply, and the operation's name.
    async fn get(
        &self,
        key: &str,
        recurse: bool,
        block: Option<(u64, Duration)>,
    ) -> Result<(HttpReply, &'static str)> {
        let blocking =
            block.map(|(index, wait)| format!("index={index}&wait={}ms", wait.as_millis()));
        let path = self.path(
            kv_path(key),
            &[
                if recurse { "recurse" } else { "" },
                blocking.as_deref().unwrap_or(""),
            ],
        );
        let timeout = block.map_or(self.timeout, |(_, wait)| {
            long_poll_timeout(wait, self.timeout)
        });
        let operation = if recurse { "consul list" } else { "consul get" };
        let reply = self
            .http
            .send(&HttpRequest {
                method: Method::GET,
                path: &path,
                body: Bytes::new(),
                idempotent: true,
                timeout,
                operation,
                headers: &[],
                long_lived: block.is_some(),
            })
            .await?;
        Ok((reply, operation))
    }

    /// Writes `value` to `key`; `Ok(false)` when a CAS or lock condition fails.
    pub(super) async fn put(&self, key: &str, value: Bytes, write: Write<'_>) -> Result<bool> {
        let param = match write {
            Write::Plain => String::new(),
            Write::Cas(index) => format!("cas={index}"),
            Write::Acquire(session) => format!("acquire={}", query_value(session)),
            Write::Lock(session) => {
                format!("acquire={}&flags={LOCK_FLAG_VALUE}", query_value(session))
            }
            Write::Contend(session) => {
                format!(
                    "acquire={}&flags={SEMAPHORE_FLAG_VALUE}",
                    query_value(session)
                )
            }
            Write::SemaphoreCas(index) => format!("cas={index}&flags={SEMAPHORE_FLAG_VALUE}"),
            Write::Release(session) => format!("release={}", query_value(session)),
        };
        let path = self.path(kv_path(key), &[&param]);
        // Never sent again once it may have reached the server: a second
        // run of a plain write would undo what another client wrote between
        // the two, and a conditional one would misreport its outcome.
        let reply = self
            .call(Method::PUT, &path, value, false, self.timeout, "consul put")
            .await?;
        wire::parse_bool(
            &wire::written(reply, "consul put", Some(key))?,
            "consul put",
        )
    }

    /// Deletes one key, every key under a prefix (`recurse`), or one key at
    /// a version (`cas`).
    pub(super) async fn delete(&self, key: &str, recurse: bool, cas: Option<u64>) -> Result<bool> {
        let cas = cas.map(|index| format!("cas={index}"));
        let path = self.path(
            kv_path(key),
            &[
                if recurse { "recurse" } else { "" },
                cas.as_deref().unwrap_or(""),
            ],
        );
        // As for a put: a second run could delete a key written meanwhile.
        let reply = self
            .call(
                Method::DELETE,
                &path,
                Bytes::new(),
                false,
                self.timeout,
                "consul delete",
            )
            .await?;
        wire::parse_bool(
            &wire::written(reply, "consul delete", Some(key))?,
            "consul delete",
        )
    }

    /// Creates a session with `ttl` and `behavior` (`release` or `delete`).
    pub(super) async fn create_session(
        &self,
        name: &str,
        ttl: Duration,
        behavior: &str,
    ) -> Result<String> {
        let body = serde_json::to_vec(&SessionCreate {
            name,
            ttl: format!("{}ms", ttl.as_millis()),
            behavior,
            lock_delay: "0s",
        })
        .map_err(|e| Error::InvalidArgument(format!("cannot encode a session: {e}")))?;
        let path = self.path("/v1/session/create".to_owned(), &[]);
        let reply = self
            .call(
                Method::PUT,
                &path,
                Bytes::from(body),
                false,
                self.timeout,
                "consul session create",
            )
            .await?;
        let reply = Self::expect_ok(reply, "consul session create", None)?;
        let created: SessionCreated = reply.json("consul session create")?;
        Ok(created.id)
    }

    /// Renews a session; `Ok(false)` when Consul no longer knows it.
    pub(super) async fn renew_session(&self, id: &str) -> Result<bool> {
        let path = self.path(format!("/v1/session/renew/{}", query_value(id)), &[]);
        let reply = self
            .call(
                Method::PUT,
                &path,
                Bytes::new(),
                true,
                self.timeout,
                "consul session renew",
            )
            .await?;
        match reply.status {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(wire::classify(&reply, "consul session renew", None)),
        }
    }

    /// Asks the agent for the cluster's leader: any answer means it is up.
    pub(super) async fn check_reachable(&self) -> Result<()> {
        let path = self.path("/v1/status/leader".to_owned(), &[]);
        let operation = "consul status leader";
        let reply = self
            .call(
                Method::GET,
                &path,
                Bytes::new(),
                true,
                self.timeout,
                operation,
            )
            .await
            .map_err(|e| self.http.none_answered(e).not_http("a Consul agent"))?;
        if reply.status == StatusCode::NOT_FOUND {
            // etcd's gateway (or any HTTP server that is not Consul) has no
            // such path.
            return Err(Error::MalformedReply {
                message: "connecting to Consul: the server there does not speak the Consul HTTP API (it answered 404 to /v1/status/leader)".into(),
                source: None,
            });
        }
        Self::expect_ok(reply, operation, None).map(drop)
    }

    /// Destroys a session (and, by its behavior, releases or deletes its keys).
    pub(super) async fn destroy_session(&self, id: &str) -> Result<()> {
        let path = self.path(format!("/v1/session/destroy/{}", query_value(id)), &[]);
        let reply = self
            .call(
                Method::PUT,
                &path,
                Bytes::new(),
                true,
                self.timeout,
                "consul session destroy",
            )
            .await?;
        Self::expect_ok(reply, "consul session destroy", None)?;
        Ok(())
    }

    /// The name of session `id`, or `None` when Consul does not know it.
    pub(super) async fn session_name(&self, id: &str) -> Result<Option<String>> {
        let path = self.path(format!("/v1/session/info/{}", query_value(id)), &[]);
        let operation = "consul session info";
        let reply = self
            .call(
                Method::GET,
                &path,
                Bytes::new(),
                true,
                self.timeout,
                operation,
            )
            .await?;
        let reply = Self::expect_ok(reply, operation, None)?;
        let sessions: Option<Vec<wire::SessionInfo>> = reply.json(operation)?;
        Ok(sessions.and_then(|s| s.into_iter().next()).map(|s| s.name))
    }

    /// True when Consul knows the session `id`.
    pub(super) async fn session_exists(&self, id: &str) -> Result<bool> {
        Ok(self.session_name(id).await?.is_some())
    }

    /// One transaction (`PUT /v1/txn`); `Ok(false)` when Consul rolled it back.
    pub(super) async fn transaction(&self, operations: &serde_json::Value) -> Result<bool> {
        Ok(self.txn(operations).await?.status == StatusCode::OK)
    }

    /// One transaction: Consul's reply when it applied it (200) or rolled it
    /// back (409, with the failed operations), else the error it means.
    pub(super) async fn txn(&self, operations: &serde_json::Value) -> Result<HttpReply> {
        let path = self.path("/v1/txn".to_owned(), &[]);
        let body = Bytes::from(operations.to_string());
        let reply = self
            .call(Method::PUT, &path, body, false, self.timeout, "consul txn")
            .await?;
        match reply.status {
            StatusCode::OK | StatusCode::CONFLICT => Ok(reply),
            _ => wire::written(reply, "consul txn", None),
        }
    }
}
