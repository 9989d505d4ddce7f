//! [`Txn`] and [`TxnResult`]: conditions on several keys, then writes,
//! applied all or none.

use std::collections::HashSet;

use bytes::Bytes;

use crate::key::check_key;
use crate::{Error, Lock, Result};

/// Conditions on several keys, then writes: applied atomically by
/// [`Store::txn`](crate::Store::txn), all or none.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvmesh::Result<()> {
/// use kvmesh::{Bytes, Txn, TxnResult};
///
/// let store = kvmesh::connect("memory://").await?;
/// store.put("accounts/a", Bytes::from("10")).await?;
/// let a = store.get("accounts/a").await?.expect("just written");
/// // Move the money only if nobody touched `a` and `b` does not exist yet.
/// let moved = Txn::new()
///     .check("accounts/a", Some(a.version))
///     .check("accounts/b", None)
///     .put("accounts/a", Bytes::from("0"))
///     .put("accounts/b", Bytes::from("10"));
/// assert!(matches!(store.txn(moved.clone()).await?, TxnResult::Committed { .. }));
/// // Again: both checks fail now, and nothing is written.
/// match store.txn(moved).await? {
///     TxnResult::Conflict { keys } => assert_eq!(keys, ["accounts/a", "accounts/b"]),
///     other => panic!("{other:?}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Txn {
    pub(crate) checks: Vec<TxnCheck>,
    pub(crate) guards: Vec<LockGuard>,
    pub(crate) writes: Vec<TxnWrite>,
}

/// A condition that a lock is still held by one holder: what
/// [`Txn::check_held`] copied from the [`Lock`], so the `Txn` may outlive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LockGuard {
    /// The lock's key, as the store names it.
    pub(crate) key: String,
    /// The holder's session ([`Lock::session`]).
    pub(crate) session: String,
    /// The holder's fencing token: tells apart two holders of one session
    /// name (an embedded store reopened).
    pub(crate) fencing_token: u64,
}

/// One condition: the key's version must be `version` (`None`: absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnCheck {
    pub(crate) key: String,
    pub(crate) version: Option<u64>,
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TxnWrite {
    Put { key: String, value: Bytes },
    Delete { key: String },
}

impl TxnWrite {
    pub(crate) fn key(&self) -> &str {
        match self {
            TxnWrite::Put { key, .. } | TxnWrite::Delete { key } => key,
        }
    }
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Txn::default()
    }

    /// The key's current version must be `version` (`None`: the key must be
    /// absent).
    #[must_use]
    pub fn check(mut self, key: &str, version: Option<u64>) -> Self {
        self.checks.push(TxnCheck {
            key: key.to_owned(),
            version,
        });
        self
    }

    /// The transaction applies only while `lock` is still held by this
    /// holder: the store itself checks it, in the same atomic step as the
    /// writes (Consul `check-session`, etcd a compare on the holder's
    /// contender key, Redis the owner token in the script, memory and file
    /// the holder's session). Once the lock was released, expired or taken
    /// by another, the result is [`TxnResult::Conflict`] naming
    /// [`lock.key()`](Lock::key). The `Txn` keeps what it needs to check, so
    /// it may outlive the `Lock`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kvmesh::Result<()> {
    /// use kvmesh::{Bytes, Txn, TxnResult};
    ///
    /// let store = kvmesh::connect("memory://").await?;
    /// let lock = store.acquire("jobs/lock", Bytes::from("worker-1")).await?;
    /// // A write only the holder can make: prepared now, sent later.
    /// let write = Txn::new()
    ///     .check_held(&lock)
    ///     .put("jobs/state", Bytes::from("done"));
    /// lock.release().await?;
    /// match store.txn(write).await? {
    ///     TxnResult::Conflict { keys } => assert_eq!(keys, ["jobs/lock"]),
    ///     other => panic!("a former holder wrote: {other:?}"),
    /// }
    /// assert!(store.get("jobs/state").await?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn check_held(mut self, lock: &Lock) -> Self {
        self.guards.push(LockGuard {
            key: lock.key().to_owned(),
            session: lock.session().to_owned(),
            fencing_token: lock.fencing_token(),
        });
        self
    }

    /// Writes `value` to `key`. On memory and etcd the key is then
    /// permanent, as `put` makes it; on Consul a key written with a TTL
    /// keeps it (the TTL session holds the key; `put` releases it).
    #[must_use]
    pub fn put(mut self, key: &str, value: Bytes) -> Self {
        self.writes.push(TxnWrite::Put {
            key: key.to_owned(),
            value,
        });
        self
    }

    /// Deletes `key` (a missing key is not an error).
    #[must_use]
    pub fn delete(mut self, key: &str) -> Self {
        self.writes.push(TxnWrite::Delete {
            key: key.to_owned(),
        });
        self
    }

    /// How many checks (lock checks included) and writes it holds.
    pub fn len(&self) -> usize {
        self.checks.len() + self.guards.len() + self.writes.len()
    }

    /// True when it holds neither checks nor writes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refuses what no backend applies: an empty key, two writes of one
    /// key (which would win is not defined), more than `max_checks` checks
    /// or `max_writes` writes (`backend` names whose limit it is).
    pub(crate) fn validate(
        &self,
        backend: &str,
        max_checks: usize,
        max_writes: usize,
    ) -> Result<()> {
        for check in &self.checks {
            check_key(&check.key)?;
        }
        for guard in &self.guards {
            check_key(&guard.key)?;
        }
        let mut written = HashSet::new();
        for write in &self.writes {
            check_key(write.key())?;
            if !written.insert(write.key()) {
                return Err(Error::InvalidArgument(format!(
                    "a txn writes {:?} twice: one write per key",
                    write.key()
                )));
            }
        }
        let checks = self.checks.len() + self.guards.len();
        if checks > max_checks || self.writes.len() > max_writes {
            return Err(Error::InvalidArgument(format!(
                "a txn on {backend} takes at most {max_checks} checks (lock checks included) \
                 and {max_writes} writes; this one has {checks} and {}",
                self.writes.len()
            )));
        }
        Ok(())
    }

    /// The same txn with every key passed through `f` (a prefixed view).
    pub(crate) fn map_keys(self, f: impl Fn(&str) -> Result<String>) -> Result<Txn> {
        let checks = self
            .checks
            .into_iter()
            .map(|c| {
                Ok(TxnCheck {
                    key: f(&c.key)?,
                    version: c.version,
                })
            })
            .collect::<Result<_>>()?;
        let writes = self
            .writes
            .into_iter()
            .map(|w| {
                Ok(match w {
                    TxnWrite::Put { key, value } => TxnWrite::Put {
                        key: f(&key)?,
                        value,
                    },
                    TxnWrite::Delete { key } => TxnWrite::Delete { key: f(&key)? },
                })
            })
            .collect::<Result<_>>()?;
        let guards = self
            .guards
            .into_iter()
            .map(|g| {
                Ok(LockGuard {
                    key: f(&g.key)?,
                    ..g
                })
            })
            .collect::<Result<_>>()?;
        Ok(Txn {
            checks,
            guards,
            writes,
        })
    }

    /// The keys whose check fails, given each checked key's current version
    /// and whether each lock check holds: version checks first, in order,
    /// then the locks no longer held, each key once.
    pub(crate) fn failed_checks(
        &self,
        current: impl Fn(&str) -> Option<u64>,
        held: impl Fn(&LockGuard) -> bool,
    ) -> Vec<String> {
        let mut failed: Vec<String> = Vec::new();
        for check in &self.checks {
            if current(&check.key) != check.version && !failed.contains(&check.key) {
                failed.push(check.key.clone());
            }
        }
        for guard in &self.guards {
            if !held(guard) && !failed.contains(&guard.key) {
                failed.push(guard.key.clone());
            }
        }
        failed
    }
}

/// What [`Store::txn`](crate::Store::txn) did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxnResult {
    /// Every write was applied; `version` is the store's index of the commit
    /// (each written key's new version; a delete's event carries it too).
    Committed {
        /// The commit's version.
        version: u64,
    },
    /// At least one check failed and nothing was written; `keys` are the
    /// keys whose check failed, in the order they were checked.
    Conflict {
        /// The keys whose check failed.
        keys: Vec<String>,
    },
}
