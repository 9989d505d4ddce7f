//! [`Prefixed`]: a view of a store under one key prefix.

use bytes::Bytes;

use crate::{
    KvEvent, KvPair, Lock, PutOptions, Result, Store, Txn, TxnResult, Watch, WatchOptions,
};

/// A store seen under a key prefix: every key, range, watch and lock goes
/// under the prefix, and keys come back without it. Several services (or
/// tests) can share one store this way without seeing each other's keys.
///
/// Made by [`StoreExt::with_prefix`](crate::StoreExt::with_prefix) or
/// [`Prefixed::new`]; prefixes nest. Errors that name a key (a refused key,
/// a lost lock) name it as the server knows it, prefix included.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvmesh::Result<()> {
/// use kvmesh::{Bytes, Store, StoreExt};
///
/// let store = kvmesh::connect("memory://").await?;
/// let billing = store.clone().with_prefix("billing/");
/// billing.put("config", Bytes::from("v1")).await?;
/// assert_eq!(billing.get_range("").await?[0].key, "config");
/// assert!(store.get("billing/config").await?.is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Prefixed<S> {
    inner: S,
    prefix: String,
}

impl<S: Store> Prefixed<S> {
    /// `inner` under `prefix` (kept as given: `"app/"` and `"app"` differ).
    pub fn new(inner: S, prefix: impl Into<String>) -> Self {
        Prefixed {
            inner,
            prefix: prefix.into(),
        }
    }

    /// The prefix every key goes under.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The store underneath.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The full key of `key`. The empty key stays refused, as on every
    /// store, rather than naming the prefix itself.
    fn key(&self, key: &str) -> Result<String> {
        crate::key::check_key(key)?;
        Ok(self.range(key))
    }

    /// The full prefix of a range (the empty range is the whole view).
    fn range(&self, prefix: &str) -> String {
        format!("{}{prefix}", self.prefix)
    }
}

/// Takes the view's prefix off a key the inner store handed back.
fn strip(prefix: &str, mut key: String) -> String {
    if key.starts_with(prefix) {
        key.drain(..prefix.len());
    }
    key
}

fn strip_pair(prefix: &str, pair: KvPair) -> KvPair {
    KvPair {
        key: strip(prefix, pair.key),
        ..pair
    }
}

fn strip_watch(prefix: &str, watch: Watch) -> Watch {
    let prefix = prefix.to_owned();
    watch.map_events(move |event| match event {
        KvEvent::Put(pair) => KvEvent::Put(strip_pair(&prefix, pair)),
        KvEvent::Delete { key, version } => KvEvent::Delete {
            key: strip(&prefix, key),
            version,
        },
    })
}

#[async_trait::async_trait]
impl<S: Store> Store for Prefixed<S> {
    async fn put(&self, key: &str, value: Bytes) -> Result<()> {
        self.inner.put(&self.key(key)?, value).await
    }

    async fn put_with(&self, key: &str, value: Bytes, options: PutOptions) -> Result<()> {
        self.inner.put_with(&self.key(key)?, value, options).await
    }

    async fn get(&self, key: &str) -> Result<Option<KvPair>> {
        let pair = self.inner.get(&self.key(key)?).await?;
        Ok(pair.map(|pair| strip_pair(&self.prefix, pair)))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(&self.key(key)?).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.inner.exists(&self.key(key)?).await
    }

    async fn watch(&self, key: &str, options: WatchOptions) -> Result<Watch> {
        let watch = self.inner.watch(&self.key(key)?, options).await?;
        Ok(strip_watch(&self.prefix, watch))
    }

    fn cancel_watch(&self, key: &str) -> usize {
        match self.key(key) {
            Ok(key) => self.inner.cancel_watch(&key),
            Err(_) => 0,
        }
    }

    async fn acquire(&self, key: &str, value: Bytes) -> Result<Lock> {
        let lock = self.inner.acquire(&self.key(key)?, value).await?;
        Ok(lock.strip_key_prefix(&self.prefix))
    }

    async fn try_acquire(&self, key: &str, value: Bytes) -> Result<Option<Lock>> {
        let lock = self.inner.try_acquire(&self.key(key)?, value).await?;
        Ok(lock.map(|lock| lock.strip_key_prefix(&self.prefix)))
    }

    async fn release(&self, session: &str) -> Result<()> {
        self.inner.release(session).await
    }

    async fn get_range(&self, prefix: &str) -> Result<Vec<KvPair>> {
        let pairs = self.inner.get_range(&self.range(prefix)).await?;
        Ok(pairs
            .into_iter()
            .map(|pair| strip_pair(&self.prefix, pair))
            .collect())
    }

    async fn delete_range(&self, prefix: &str) -> Result<()> {
        // As on every store, never "everything" (here: the whole view).
        crate::key::check_delete_prefix(prefix)?;
        self.inner.delete_range(&self.range(prefix)).await
    }

    async fn watch_range(&self, prefix: &str, options: WatchOptions) -> Result<Watch> {
        let watch = self.inner.watch_range(&self.range(prefix), options).await?;
        Ok(strip_watch(&self.prefix, watch))
    }

    fn cancel_watch_range(&self, prefix: &str) -> usize {
        self.inner.cancel_watch_range(&self.range(prefix))
    }

    async fn atomic_put(&self, key: &str, value: Bytes, previous: Option<u64>) -> Result<bool> {
        self.inner
            .atomic_put(&self.key(key)?, value, previous)
            .await
    }

    async fn atomic_delete(&self, key: &str, previous: u64) -> Result<bool> {
        self.inner.atomic_delete(&self.key(key)?, previous).await
    }

    async fn lock_holder(&self, key: &str) -> Result<Option<KvPair>> {
        let holder = self.inner.lock_holder(&self.key(key)?).await?;
        Ok(holder.map(|pair| strip_pair(&self.prefix, pair)))
    }

    async fn acquire_permit(
        &self,
        key: &str,
        limit: u32,
        value: Bytes,
        wait: bool,
    ) -> Result<Option<Lock>> {
        let permit = self
            .inner
            .acquire_permit(&self.key(key)?, limit, value, wait)
            .await?;
        Ok(permit.map(|lock| lock.strip_key_prefix(&self.prefix)))
    }

    async fn permit_holders(&self, key: &str, limit: u32) -> Result<Vec<Bytes>> {
        self.inner.permit_holders(&self.key(key)?, limit).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        let prefixed = txn.map_keys(|key| self.key(key))?;
        Ok(match self.inner.txn(prefixed).await? {
            TxnResult::Conflict { keys } => TxnResult::Conflict {
                keys: keys.into_iter().map(|k| strip(&self.prefix, k)).collect(),
            },
            committed => committed,
        })
    }
}
