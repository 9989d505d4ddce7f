//! `Store` for the pointers a store is held through (`Arc`, `Box`, `&`),
//! so that an `Arc<dyn Store>` goes wherever an `impl Store` is expected.

use std::sync::Arc;

use bytes::Bytes;

use crate::{KvPair, Lock, PutOptions, Result, Store, Watch, WatchOptions};

macro_rules! forward_store {
    ($($pointer:ty),*) => {$(
        #[async_trait::async_trait]
        impl<T: Store + ?Sized> Store for $pointer {
            async fn put(&self, key: &str, value: Bytes) -> Result<()> {
                (**self).put(key, value).await
            }
            async fn put_with(&self, key: &str, value: Bytes, options: PutOptions) -> Result<()> {
                (**self).put_with(key, value, options).await
            }
            async fn get(&self, key: &str) -> Result<Option<KvPair>> {
                (**self).get(key).await
            }
            async fn delete(&self, key: &str) -> Result<()> {
                (**self).delete(key).await
            }
            async fn exists(&self, key: &str) -> Result<bool> {
                (**self).exists(key).await
            }
            async fn watch(&self, key: &str, options: WatchOptions) -> Result<Watch> {
                (**self).watch(key, options).await
            }
            fn cancel_watch(&self, key: &str) -> usize {
                (**self).cancel_watch(key)
            }
            async fn acquire(&self, key: &str, value: Bytes) -> Result<Lock> {
                (**self).acquire(key, value).await
            }
            async fn try_acquire(&self, key: &str, value: Bytes) -> Result<Option<Lock>> {
                (**self).try_acquire(key, value).await
            }
            async fn release(&self, session: &str) -> Result<()> {
                (**self).release(session).await
            }
            async fn get_range(&self, prefix: &str) -> Result<Vec<KvPair>> {
                (**self).get_range(prefix).await
            }
            async fn delete_range(&self, prefix: &str) -> Result<()> {
                (**self).delete_range(prefix).await
            }
            async fn watch_range(&self, prefix: &str, options: WatchOptions) -> Result<Watch> {
                (**self).watch_range(prefix, options).await
            }
            fn cancel_watch_range(&self, prefix: &str) -> usize {
                (**self).cancel_watch_range(prefix)
            }
            async fn atomic_put(
                &self,
                key: &str,
                value: Bytes,
                previous: Option<u64>,
            ) -> Result<bool> {
                (**self).atomic_put(key, value, previous).await
            }
            async fn atomic_delete(&self, key: &str, previous: u64) -> Result<bool> {
                (**self).atomic_delete(key, previous).await
            }
        }
    )*};
}

forward_store!(Arc<T>, Box<T>, &T);
