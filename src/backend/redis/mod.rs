//! The Redis backend (`redis://[user:password@]host:port[/db]`).
//!
//! Everything lives under one namespace (`?namespace=`, default `kvmesh`)
//! and one hash tag, `{kvmesh}:`: a hash per key (`{kvmesh}:k:<key>`, fields
//! `value` and `version`, `owner` for a lock), the store-wide version
//! counter (`rev`), a sorted index of the keys (`index`) for prefix ranges,
//! the change log (`log`, a capped stream every write appends to in the same
//! script), TTL deadlines (`ttl`) and tombstones (`tomb`, `tombfloor`). Every
//! write is one Lua script (`lua/`), so versions strictly increase and the
//! log holds every change in order; watches read the log ([`hub`], [`watch`]).

mod client;
mod connect;
mod epoch;
mod hub;
mod lock;
mod log;
mod range;
mod sweep;
#[cfg_attr(not(feature = "tls"), path = "no_tls.rs")]
mod tls;
mod watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;

use self::client::Client;
use self::hub::Hub;
use crate::key::{check_delete_prefix, check_key};
use crate::txn::TxnWrite;
use crate::watch::{WatchRegistry, WatchTarget};
use crate::{
    Config, Error, KvPair, Lock, PutOptions, Result, Store, Txn, TxnResult, Watch, WatchOptions,
};

/// The most keys one `delete_range` call deletes: about a millisecond of
/// the server's time.
const DELETE_BATCH: u64 = 500;

/// The Redis store.
pub(crate) struct RedisStore {
    client: Arc<Client>,
    hub: Arc<Hub>,
    registry: WatchRegistry,
    lock_ttl: Duration,
    sweeper_started: AtomicBool,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on one Redis server, `host:port[/db]`; nothing is sent yet.
    pub(crate) fn new(endpoints: &[&str], config: Config) -> Result<Self> {
        let [endpoint] = endpoints else {
            return Err(Error::InvalidArgument(
                "the redis backend takes one endpoint, host:port[/db]".into(),
            ));
        };
        let (address, db) = match endpoint.split_once('/') {
            Some((address, db)) if !db.is_empty() => {
                let db: u32 = db.parse().map_err(|_| {
                    Error::InvalidArgument(format!("redis: database {db:?} is not a number"))
                })?;
                (address, db)
            }
            Some((address, _)) => (address, 0),
            None => (*endpoint, 0),
        };
        let encode = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let userinfo = match (&config.username, &config.password) {
            (None, None) => String::new(),
            (user, password) => format!(
                "{}:{}@",
                encode(user.as_deref().unwrap_or("")),
                encode(password.as_deref().unwrap_or(""))
            ),
        };
        // The password is only in this string, handed to redis-rs.
        let scheme = if config.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let url = format!("{scheme}://{userinfo}{address}/{db}");
        let client = match &config.tls {
            None => redis::Client::open(url),
            Some(tls) => tls::client(url, tls)?,
        }
        .map_err(|e| {
            Error::InvalidArgument(format!(
                "redis: {address} is not host:port ({:?})",
                e.kind()
            ))
        })?;
        let namespace = config.namespace.as_deref().unwrap_or("kvmesh");
        let client = Client::new(
            client,
            address.to_owned(),
            namespace,
            config.history,
            config.timeout,
        );
        let client = Arc::new(client);
        let hub = Arc::new(Hub::default());
        // After the server lost the store's data, every watch re-reads.
        let (weak_hub, weak_client) = (Arc::downgrade(&hub), Arc::downgrade(&client));
        client.epoch.on_reset(Box::new(move |revision| {
            if let (Some(hub), Some(client)) = (weak_hub.upgrade(), weak_client.upgrade()) {
                hub.reset(&client, revision);
            }
        }));
        Ok(RedisStore {
            client,
            hub,
            registry: WatchRegistry::default(),
            lock_ttl: config.lock_ttl,
            sweeper_started: AtomicBool::new(false),
        })
    }

    fn ensure_sweeper(&self) {
        if !self.sweeper_started.swap(true, Ordering::AcqRel) {
            tokio::spawn(sweep::sweep_expired_keys(Arc::downgrade(&self.client)));
        }
    }

    async fn write(
        &self,
        operation: &'static str,
        script: &redis::Script,
        args: &[&[u8]],
    ) -> Result<u64> {
        self.ensure_sweeper();
        let version: u64 = self.client.run_write(operation, script, args).await?;
        self.client.epoch.saw(version);
        Ok(version)
    }

    async fn watch_target(&self, target: WatchTarget, options: &WatchOptions) -> Result<Watch> {
        self.ensure_sweeper();
        let (events, initial) =
            watch::open(&self.client, &self.hub, target.clone(), options).await?;
        let watch = Watch::new(events, self.registry.register(target));
        Ok(watch.with_initial_state(initial))
    }
}

fn ttl_millis(ttl: Duration) -> Result<String> {
    crate::ttl::check_ttl(ttl, crate::ttl::MAX_TTL)?;
    // Whole milliseconds, rounded up: a key never expires early.
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    Ok(ms.to_string())
}

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn put(&self, key: &str, value: Bytes) -> Result<()> {
        check_key(key)?;
        let scripts = &self.client.scripts;
        self.write("put", &scripts.put, &[key.as_bytes(), &value, b""])
            .await?;
        Ok(())
    }

    async fn put_with(&self, key: &str, value: Bytes, options: PutOptions) -> Result<()> {
        check_key(key)?;
        let ttl = match options.ttl {
            Some(ttl) => ttl_millis(ttl)?,
            None => String::new(),
        };
        let scripts = &self.client.scripts;
        let args: [&[u8]; 3] = [key.as_bytes(), &value, ttl.as_bytes()];
        self.write("put", &scripts.put, &args).await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<KvPair>> {
        check_key(key)?;
        let command = redis::cmd("HMGET")
            .arg(self.client.hash_key(key))
            .arg("value")
            .arg("version")
            .clone();
        let (value, version): (Option<Vec<u8>>, Option<u64>) =
            self.client.command("get", &command).await?;
        Ok(match (value, version) {
            (Some(value), Some(version)) => Some(KvPair {
                key: key.to_owned(),
                value: Bytes::from(value),
                version,
            }),
            _ => None,
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        let scripts = &self.client.scripts;
        self.write("delete", &scripts.delete, &[key.as_bytes()])
            .await?;
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        let command = redis::cmd("HEXISTS")
            .arg(self.client.hash_key(key))
            .arg("version")
            .clone();
        self.client.command("exists", &command).await
    }

    async fn watch(&self, key: &str, options: WatchOptions) -> Result<Watch> {
        check_key(key)?;
        self.watch_target(WatchTarget::Key(key.to_owned()), &options)
            .await
    }

    fn cancel_watch(&self, key: &str) -> usize {
        self.registry.cancel(&WatchTarget::Key(key.to_owned()))
    }

    async fn acquire(&self, key: &str, value: Bytes) -> Result<Lock> {
        check_key(key)?;
        self.ensure_sweeper();
        let changes = self.watch(key, WatchOptions::default());
        lock::acquire(&self.client, changes, key, &value, self.lock_ttl).await
    }

    async fn try_acquire(&self, key: &str, value: Bytes) -> Result<Option<Lock>> {
        check_key(key)?;
        self.ensure_sweeper();
        lock::try_lock(&self.client, key, &value, self.lock_ttl).await
    }

    async fn release(&self, session: &str) -> Result<()> {
        let unknown = || Error::UnknownSession {
            session: session.to_owned(),
        };
        let (token, key) = lock::parse_session(session).ok_or_else(unknown)?;
        if lock::release(&self.client, key, token).await? {
            Ok(())
        } else {
            Err(unknown())
        }
    }

    async fn get_range(&self, prefix: &str) -> Result<Vec<KvPair>> {
        let target = WatchTarget::Prefix(prefix.to_owned());
        Ok(range::read_state(&self.client, &target, None).await?.pairs)
    }

    async fn delete_range(&self, prefix: &str) -> Result<()> {
        check_delete_prefix(prefix)?;
        let scripts = &self.client.scripts;
        let batch = DELETE_BATCH.to_string();
        let args: [&[u8]; 2] = [prefix.as_bytes(), batch.as_bytes()];
        // Batch after batch: each call is short (Redis runs nothing else
        // meanwhile); a call that finds less than a batch found the last.
        while self
            .write("delete_range", &scripts.delete_range, &args)
            .await?
            >= DELETE_BATCH
        {}
        Ok(())
    }

    async fn watch_range(&self, prefix: &str, options: WatchOptions) -> Result<Watch> {
        self.watch_target(WatchTarget::Prefix(prefix.to_owned()), &options)
            .await
    }

    fn cancel_watch_range(&self, prefix: &str) -> usize {
        self.registry
            .cancel(&WatchTarget::Prefix(prefix.to_owned()))
    }

    async fn atomic_put(&self, key: &str, value: Bytes, previous: Option<u64>) -> Result<bool> {
        check_key(key)?;
        let previous = previous.map(|v| v.to_string()).unwrap_or_default();
        let scripts = &self.client.scripts;
        let args: [&[u8]; 3] = [key.as_bytes(), &value, previous.as_bytes()];
        Ok(self.write("atomic_put", &scripts.atomic_put, &args).await? != 0)
    }

    async fn atomic_delete(&self, key: &str, previous: u64) -> Result<bool> {
        check_key(key)?;
        let previous = previous.to_string();
        let scripts = &self.client.scripts;
        let args: [&[u8]; 2] = [key.as_bytes(), previous.as_bytes()];
        Ok(self
            .write("atomic_delete", &scripts.atomic_delete, &args)
            .await?
            != 0)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        // One script, any size the server takes; a generous bound keeps one
        // call from blocking Redis for long.
        txn.validate("redis", 10_000, 10_000)?;
        let mut args: Vec<Vec<u8>> = vec![txn.checks.len().to_string().into_bytes()];
        for check in &txn.checks {
            args.push(check.key.clone().into_bytes());
            let version = check.version.map(|v| v.to_string()).unwrap_or_default();
            args.push(version.into_bytes());
        }
        args.push(txn.guards.len().to_string().into_bytes());
        for guard in &txn.guards {
            // A session of another kind of store names no owner token here.
            let token = lock::parse_session(&guard.session).map_or("", |(token, _)| token);
            args.extend([guard.key.clone().into_bytes(), token.as_bytes().to_vec()]);
        }
        args.push(txn.writes.len().to_string().into_bytes());
        for write in &txn.writes {
            match write {
                TxnWrite::Put { key, value } => {
                    args.extend([b"put".to_vec(), key.clone().into_bytes(), value.to_vec()]);
                }
                TxnWrite::Delete { key } => {
                    args.extend([b"del".to_vec(), key.clone().into_bytes(), Vec::new()]);
                }
            }
        }
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        self.ensure_sweeper();
        let reply: redis::Value = self
            .client
            .run_write("txn", &self.client.scripts.txn, &args)
            .await?;
        let result = txn_result(reply)?;
        if let TxnResult::Committed { version } = &result {
            self.client.epoch.saw(*version);
        }
        Ok(result)
    }
}

/// `{1, version}` or `{0, {keys}}`.
fn txn_result(reply: redis::Value) -> Result<TxnResult> {
    use redis::Value;
    let malformed = || Error::MalformedReply {
        message: "redis: the txn script's reply".into(),
        source: None,
    };
    let Value::Array(parts) = reply else {
        return Err(malformed());
    };
    match parts.as_slice() {
        [Value::Int(1), Value::Int(version)] => Ok(TxnResult::Committed {
            version: u64::try_from(*version).map_err(|_| malformed())?,
        }),
        [Value::Int(0), keys] => {
            let keys: Vec<String> =
                redis::from_redis_value(keys.clone()).map_err(|_| malformed())?;
            Ok(TxnResult::Conflict { keys })
        }
        _ => Err(malformed()),
    }
}
