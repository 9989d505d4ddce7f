//! `Store` for the pointers a store is held through (`Arc`, `Box`, `&`),
//! so that an `Arc<dyn Store>` goes wherever an `impl Store` is expected.

use std::sync::Arc;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::{KvPair, Lock, PutOptions, Result, Store, Txn, TxnResult, Watch, WatchOptions};

/// The future every async `Store` method returns (as `async-trait` writes it).
type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

// Written without `#[async_trait]`, which would box a second future around
// the pointee's: each method hands back the pointee's own boxed future.
macro_rules! forward_store {
    ($($pointer:ty),*) => {$(
        impl<T: Store + ?Sized> Store for $pointer {
            fn put<'a, 'b, 'f>(&'a self, key: &'b str, value: Bytes) -> Boxed<'f, ()>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).put(key, value)
            }
            fn put_with<'a, 'b, 'f>(&'a self, key: &'b str, value: Bytes, options: PutOptions) -> Boxed<'f, ()>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).put_with(key, value, options)
            }
            fn get<'a, 'b, 'f>(&'a self, key: &'b str) -> Boxed<'f, Option<KvPair>>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).get(key)
            }
            fn delete<'a, 'b, 'f>(&'a self, key: &'b str) -> Boxed<'f, ()>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).delete(key)
            }
            fn exists<'a, 'b, 'f>(&'a self, key: &'b str) -> Boxed<'f, bool>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).exists(key)
            }
            fn watch<'a, 'b, 'f>(&'a self, key: &'b str, options: WatchOptions) -> Boxed<'f, Watch>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).watch(key, options)
            }
            fn cancel_watch(&self, key: &str) -> usize {
                (**self).cancel_watch(key)
            }
            fn acquire<'a, 'b, 'f>(&'a self, key: &'b str, value: Bytes) -> Boxed<'f, Lock>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).acquire(key, value)
            }
            fn try_acquire<'a, 'b, 'f>(&'a self, key: &'b str, value: Bytes) -> Boxed<'f, Option<Lock>>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).try_acquire(key, value)
            }
            fn release<'a, 'b, 'f>(&'a self, session: &'b str) -> Boxed<'f, ()>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).release(session)
            }
            fn get_range<'a, 'b, 'f>(&'a self, prefix: &'b str) -> Boxed<'f, Vec<KvPair>>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).get_range(prefix)
            }
            fn delete_range<'a, 'b, 'f>(&'a self, prefix: &'b str) -> Boxed<'f, ()>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).delete_range(prefix)
            }
            fn watch_range<'a, 'b, 'f>(&'a self, prefix: &'b str, options: WatchOptions) -> Boxed<'f, Watch>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).watch_range(prefix, options)
            }
            fn cancel_watch_range(&self, prefix: &str) -> usize {
                (**self).cancel_watch_range(prefix)
            }
            fn atomic_put<'a, 'b, 'f>(&'a self, key: &'b str, value: Bytes, previous: Option<u64>) -> Boxed<'f, bool>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).atomic_put(key, value, previous)
            }
            fn atomic_delete<'a, 'b, 'f>(&'a self, key: &'b str, previous: u64) -> Boxed<'f, bool>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).atomic_delete(key, previous)
            }
            fn lock_holder<'a, 'b, 'f>(&'a self, key: &'b str) -> Boxed<'f, Option<KvPair>>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).lock_holder(key)
            }
            fn acquire_permit<'a, 'b, 'f>(&'a self, key: &'b str, limit: u32, value: Bytes, wait: bool) -> Boxed<'f, Option<Lock>>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).acquire_permit(key, limit, value, wait)
            }
            fn permit_holders<'a, 'b, 'f>(&'a self, key: &'b str, limit: u32) -> Boxed<'f, Vec<Bytes>>
            where 'a: 'f, 'b: 'f, Self: 'f {
                (**self).permit_holders(key, limit)
            }
            fn txn<'a, 'f>(&'a self, txn: Txn) -> Boxed<'f, TxnResult>
            where 'a: 'f, Self: 'f {
                (**self).txn(txn)
            }
        }
    )*};
}

forward_store!(Arc<T>, Box<T>, &T);
