//! [`StoreExt`]: what every user of a [`Store`] writes again otherwise —
//! values from anything `Into<Bytes>`, values as serde types, the
//! compare-and-swap retry loop, and a lock with a deadline.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, KvEvent, Lock, Prefixed, Result, Store, WatchOptions};

/// One change seen by [`StoreExt::watch_json`], its value decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonEvent<T> {
    /// The key was written with this value.
    Put {
        /// The key.
        key: String,
        /// The decoded value.
        value: T,
        /// The version of the write.
        version: u64,
    },
    /// The key was deleted.
    Delete {
        /// The key.
        key: String,
        /// The store's version at the deletion.
        version: u64,
    },
}

/// Helpers every [`Store`] has (`Arc<dyn Store>` included): import
/// `kvmesh::StoreExt` to use them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvmesh::Result<()> {
/// use kvmesh::StoreExt;
///
/// let store = kvmesh::connect("memory://").await?;
/// store.put_value("greeting", "hello").await?;
/// store.put_json("replicas", &3u32).await?;
/// // The compare-and-swap loop: retried until no other writer got between.
/// let after = store
///     .update("replicas", |old| {
///         let n: u32 = old.and_then(|v| serde_json::from_slice(v).ok()).unwrap_or(0);
///         serde_json::to_vec(&(n + 1)).unwrap().into()
///     })
///     .await?;
/// assert_eq!(after, "4");
/// assert_eq!(store.get_json::<u32>("replicas").await?, Some(4));
/// # Ok(())
/// # }
/// ```
#[async_trait::async_trait]
pub trait StoreExt: Store {
    /// [`Store::put`] with a value from anything that becomes [`Bytes`]
    /// (`&'static str`, `String`, `Vec<u8>`, …).
    async fn put_value(&self, key: &str, value: impl Into<Bytes> + Send) -> Result<()> {
        self.put(key, value.into()).await
    }

    /// Writes `value` as JSON. A value serde cannot write is
    /// [`Error::InvalidArgument`].
    async fn put_json<T: Serialize + Sync + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        let json = serde_json::to_vec(value)
            .map_err(|e| Error::InvalidArgument(format!("{key:?}: cannot write as JSON: {e}")))?;
        self.put(key, Bytes::from(json)).await
    }

    /// Reads a JSON value; `Ok(None)` when the key does not exist. A value
    /// that is not that type's JSON is [`Error::MalformedReply`], with the
    /// serde error as its source.
    async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key).await? {
            Some(pair) => decode(&pair.key, &pair.value).map(Some),
            None => Ok(None),
        }
    }

    /// [`Store::watch`] with each value decoded as JSON; a value that does
    /// not decode is an `Err` item, and the watch goes on.
    async fn watch_json<T: DeserializeOwned + Send + 'static>(
        &self,
        key: &str,
        options: WatchOptions,
    ) -> Result<BoxStream<'static, Result<JsonEvent<T>>>> {
        let watch = self.watch(key, options).await?;
        Ok(watch
            .map(|event| match event? {
                KvEvent::Put(pair) => Ok(JsonEvent::Put {
                    value: decode(&pair.key, &pair.value)?,
                    key: pair.key,
                    version: pair.version,
                }),
                KvEvent::Delete { key, version } => Ok(JsonEvent::Delete { key, version }),
            })
            .boxed())
    }

    /// Replaces the value of `key` with `f(current)` (`None` when absent)
    /// by compare-and-swap, calling `f` again whenever another writer got
    /// in between; returns the value written.
    async fn update<F>(&self, key: &str, mut f: F) -> Result<Bytes>
    where
        F: FnMut(Option<&Bytes>) -> Bytes + Send,
    {
        loop {
            let current = self.get(key).await?;
            let new = f(current.as_ref().map(|pair| &pair.value));
            let previous = current.map(|pair| pair.version);
            if self.atomic_put(key, new.clone(), previous).await? {
                return Ok(new);
            }
        }
    }

    /// [`Store::acquire`], giving up after `timeout`: `Ok(None)` then, with
    /// nothing left behind (acquire is cancel-safe).
    async fn acquire_timeout(
        &self,
        key: &str,
        value: impl Into<Bytes> + Send,
        timeout: Duration,
    ) -> Result<Option<Lock>> {
        match tokio::time::timeout(timeout, self.acquire(key, value.into())).await {
            Ok(lock) => lock.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// This store seen under `prefix`: every key, range, watch and lock goes
    /// under it, and keys come back without it. See [`Prefixed`].
    fn with_prefix(self, prefix: impl Into<String>) -> Prefixed<Self>
    where
        Self: Sized,
    {
        Prefixed::new(self, prefix)
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

fn decode<T: DeserializeOwned>(key: &str, value: &[u8]) -> Result<T> {
    serde_json::from_slice(value)
        .map_err(|e| Error::undecodable(format!("{key:?} does not hold that JSON type"), e))
}
