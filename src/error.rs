//! The one error type every backend returns.

use std::time::Duration;

/// The result type of every fallible kvmesh call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from below kvmesh (an I/O, HTTP or JSON error), kept as a
/// [`std::error::Error::source`]. Shared, so that an [`Error`] can be cloned
/// (one failure reported to several watches keeps its variant and cause).
pub type SourceError = std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong, told apart by variant.
///
/// Messages never contain secrets (tokens, passwords): URLs are shown without
/// their userinfo or query string.
///
/// ```
/// use kvmesh::Error;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = kvmesh::connect("memory://").await.unwrap();
/// match store.get("").await {
///     Err(Error::InvalidKey { .. }) => {} // an empty key is refused, never "everything"
///     other => panic!("unexpected: {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key cannot be stored as given (empty, or a shape the backend cannot
    /// round-trip exactly).
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key as the caller gave it.
        key: String,
        /// Why it was refused.
        reason: String,
    },

    /// The value is larger than the backend accepts.
    #[error("the value of {size} bytes for {key:?} is too large (the limit is {limit} bytes)")]
    ValueTooLarge {
        /// The key it was written to.
        key: String,
        /// Size of the rejected value in bytes.
        size: usize,
        /// The largest value the backend accepts.
        limit: usize,
    },

    /// An argument or option is not acceptable (a malformed URL, a TTL below
    /// the backend's minimum, an unknown query parameter, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The store did not answer within the configured timeout.
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// What was being done.
        operation: &'static str,
        /// The timeout that expired.
        after: Duration,
    },

    /// No endpoint of the store could be reached, or every one failed.
    #[error("store unreachable: {message}")]
    Unreachable {
        /// What failed, without secrets.
        message: String,
        /// The underlying I/O or HTTP error, if any.
        #[source]
        source: Option<SourceError>,
    },

    /// The store refused the credentials or the operation.
    #[error("permission denied: {0}")]
    PermissionDenied(String),

    /// A lock this caller held is no longer held.
    #[error("lock on {key:?} was lost")]
    LockLost {
        /// The lock's key.
        key: String,
    },

    /// `release` was given a session that holds no lock.
    #[error("unknown session {session:?}")]
    UnknownSession {
        /// The session id as given.
        session: String,
    },

    /// This backend cannot do what was asked.
    #[error("not supported by the {backend} backend: {what}")]
    Unsupported {
        /// The backend's name.
        backend: &'static str,
        /// What was asked for.
        what: String,
    },

    /// A write may have reached the store, but no answer says whether it
    /// was applied: the connection broke before the reply, or the server
    /// answered that it could not confirm it (etcd's "request timed out",
    /// "leader changed"; a Consul 5xx). Read the key back to learn which;
    /// kvmesh never sends such a write again. (A write that times out is
    /// [`Error::Timeout`], and its outcome is unknown in the same way.)
    #[error(
        "{operation}: the write may or may not have been applied (the connection broke before the reply, or the server could not confirm it): {message}"
    )]
    OutcomeUnknown {
        /// What was being done.
        operation: &'static str,
        /// What failed, without secrets.
        message: String,
        /// The underlying I/O or HTTP error, if any.
        #[source]
        source: Option<SourceError>,
    },

    /// TLS failed: the server's certificate does not chain to a trusted CA or
    /// does not carry the expected name, or the server refused the client's
    /// certificate (or its absence).
    #[error("TLS failed: {message}")]
    Tls {
        /// What failed.
        message: String,
    },

    /// The store answered something kvmesh cannot understand.
    #[error("unexpected reply from the store: {message}")]
    MalformedReply {
        /// What was wrong, without secrets.
        message: String,
        /// The decoding error, if any.
        #[source]
        source: Option<SourceError>,
    },

    /// The store refused the request because it is overloaded (Consul's
    /// 429 "too many connections/requests"). Retryable: try again later.
    /// Reads were already retried with backoff; a write was refused
    /// before it was applied.
    #[error("{operation}: the store is overloaded: {message}")]
    Overloaded {
        /// What was being done.
        operation: &'static str,
        /// What the store said.
        message: String,
    },

    /// The file store's file is open already, by another process or by
    /// another store of this one: one store at a time owns a file.
    #[error("the store at {path} is in use by {}", holder_text(*.holder))]
    #[non_exhaustive]
    StoreInUse {
        /// The file.
        path: std::path::PathBuf,
        /// A process that has the file open, where the system says (Linux:
        /// found among every process's open files; another process first),
        /// most likely the one whose store holds it.
        holder: Option<u32>,
    },

    /// The file store's file could not be read or written (an I/O error, a
    /// full disk), or is damaged, or is not a kvmesh store. A store whose
    /// commit failed refuses every later call: open it again.
    #[error("the store at {path}: {message}")]
    Storage {
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        message: String,
        /// The underlying I/O or storage error, if any.
        #[source]
        source: Option<SourceError>,
    },

    /// A watch asked for history the store no longer has, and the changes it
    /// missed (deletions in particular) cannot be reconstructed.
    #[error("history after version {requested} is gone (the oldest available is {oldest})")]
    Compacted {
        /// The version the watch wanted to resume after.
        requested: u64,
        /// The oldest version the store can still replay from.
        oldest: u64,
    },

    /// A write could not be made because a lock holds the key (on Consul,
    /// a TTL write of a key a lock's session holds). Not retryable as it
    /// is: the lock must be released first.
    #[error("{key:?} is held by a lock: release the lock first, or write it as its holder")]
    #[non_exhaustive]
    HeldByLock {
        /// The key.
        key: String,
    },

    /// A subscriber to a [`Cache`](crate::cache::Cache)'s changes fell so
    /// far behind that changes it had not read were dropped; its stream
    /// ends after this error. Subscribe again (and read the copy) to go on.
    #[error("a cache's change subscriber fell {skipped} changes behind")]
    Lagged {
        /// How many changes it missed.
        skipped: u64,
    },
}

/// Who holds a file store, for [`Error::StoreInUse`]'s message.
fn holder_text(holder: Option<u32>) -> String {
    match holder {
        Some(pid) if pid == std::process::id() => "another store of this process".to_owned(),
        Some(pid) => format!("process {pid}"),
        None => "another process or store".to_owned(),
    }
}

impl Error {
    /// True for errors that may go away when the same call is tried again
    /// (timeouts, an unreachable store).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Timeout { .. } | Error::Unreachable { .. } | Error::Overloaded { .. }
        )
    }

    /// A [`Error::MalformedReply`] without a source.
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Error::MalformedReply {
            message: message.into(),
            source: None,
        }
    }

    /// A [`Error::MalformedReply`] for a reply that failed to decode.
    pub(crate) fn undecodable(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::MalformedReply {
            message: message.into(),
            source: Some(std::sync::Arc::new(source)),
        }
    }

    pub(crate) fn invalid_key(key: &str, reason: impl Into<String>) -> Self {
        Error::InvalidKey {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}
