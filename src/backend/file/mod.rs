//! The durable embedded store (`file:///path/store.redb`).
//!
//! It is the local engine (`backend/local/`), on the same state, watches,
//! history, TTL purge and locks as the memory store, with every change also
//! committed to a redb file: the state records each change in a journal
//! under its lock, a committer thread
//! writes what accumulated as one fsync'd transaction (group commit), and a
//! call returns, and a change becomes visible, once its commit is on disk.
//! Opening the file reads it back into memory: the data set must fit in
//! memory, and reads never touch the disk.

mod clock;
mod commit;
mod gate;
mod holder;
mod journal;
mod load;
mod tables;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redb::{Database, DatabaseError};
use tokio::time::Instant;

use self::gate::{Committed, Gate};
use crate::backend::local::{LocalStore, WeakLocalStore};
use crate::{Config, Error, Result};

/// The largest value the file store takes by default: redb stores values
/// up to 3 GiB, and each is held in memory too.
const MAX_VALUE_SIZE: usize = 1 << 30;

/// redb's page cache: the data is in memory already, so this only serves
/// the B-tree pages commits rewrite.
const CACHE_BYTES: usize = 64 << 20;

/// The files this process has open, by canonical path: a second `connect`
/// of one file shares the store the first opened.
static OPEN: Mutex<BTreeMap<PathBuf, WeakLocalStore>> = Mutex::new(BTreeMap::new());

/// How long an open waits for a file that this process is closing (the
/// last handle of its store was just dropped, its last commit under way).
const CLOSING_WAIT: Duration = Duration::from_secs(5);

/// Opens (or creates) the store in the file at `path`. Within a process,
/// every open of one file (by canonical path) hands out the same store,
/// with the options of the open that opened it; the file closes when the
/// last handle is dropped. Another process gets [`Error::StoreInUse`].
pub(crate) fn open(path: &str, config: &Config) -> Result<LocalStore> {
    if path.is_empty() {
        return Err(Error::InvalidArgument(
            "the file store needs a path: file:///absolute/path.redb or file://./relative.redb"
                .into(),
        ));
    }
    let path = PathBuf::from(path);
    let canonical = canonical(&path);
    // Held while opening, so that two opens of one file cannot both open it.
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    open.retain(|_, store| store.is_open());
    if let Some(store) = open.get(&canonical).and_then(WeakLocalStore::upgrade) {
        return Ok(store);
    }
    let deadline = std::time::Instant::now() + CLOSING_WAIT;
    let store = loop {
        match open_new(path.clone(), config) {
            Err(Error::StoreInUse {
                holder: Some(pid), ..
            }) if pid == std::process::id() && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other?,
        }
    };
    open.insert(canonical, store.downgrade());
    Ok(store)
}

/// `path` with its directory resolved (the file itself may not exist yet).
fn canonical(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    match (absolute.parent(), absolute.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|dir| dir.join(name))
            .unwrap_or(absolute.clone()),
        _ => absolute,
    }
}

/// Opens the file, which no store of this process has open.
fn open_new(path: PathBuf, config: &Config) -> Result<LocalStore> {
    let _span = tracing::debug_span!("file_open", path = %path.display()).entered();
    let db = open_database(&path)?;
    let (mut state, lock_keys) = load::load(&path, &db, config.history)?;
    let gate = Arc::new(Gate::new(state.revision()));
    let (journal, reader) = journal::journal();
    state.start_log(Box::new(journal));
    // What happened while the store was closed: TTLs that passed, and the
    // end of the locks its last process held. Both are changes, delivered
    // to watches that resume from before them.
    state.purge_expired(Instant::now());
    for key in lock_keys {
        state.remove(&key);
    }
    let committer = commit::start(db, path.clone(), reader, gate.clone())?;
    let mut config = config.clone();
    config.max_value_size = Some(
        config
            .max_value_size
            .map_or(MAX_VALUE_SIZE, |limit| limit.min(MAX_VALUE_SIZE)),
    );
    let committed = Committed {
        gate,
        location: path.display().to_string(),
        _committer: Box::new(committer),
    };
    Ok(LocalStore::with_state(
        &config,
        state,
        Some(Box::new(committed)),
    ))
}

/// Opens the redb file, checking every page's checksum so that a damaged
/// file is an error, not a panic later.
fn open_database(path: &Path) -> Result<Database> {
    let opened = std::panic::catch_unwind(|| {
        Database::builder()
            .set_cache_size(CACHE_BYTES)
            .set_check_integrity_on_open(true)
            .create(path)
    });
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(DatabaseError::DatabaseAlreadyOpen)) => Err(Error::StoreInUse {
            path: path.to_owned(),
            holder: holder::lock_holder(path),
        }),
        Ok(Err(e)) => Err(tables::storage_error(path, "opening the file", e)),
        // redb checks what it reads; this is the last guard against a file
        // damaged in a way it does not expect.
        Err(_) => Err(Error::Storage {
            path: path.to_owned(),
            message: "the file is damaged (redb failed reading it)".into(),
            source: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use bytes::Bytes;

    #[tokio::test]
    async fn put_then_get() {
        let dir = std::env::temp_dir().join(format!("kvmesh-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.redb");
        let _ = std::fs::remove_file(&path);
        let store = open(path.to_str().unwrap(), &Config::default()).unwrap();
        store.put("k", Bytes::from("v")).await.unwrap();
        assert_eq!(store.get("k").await.unwrap().unwrap().value, "v");
    }

    /// Once a commit to disk failed, every change is refused before it touches
    /// the state: deletes, txns and releases as well as puts.
    #[tokio::test]
    async fn after_a_failed_commit_every_change_is_refused() {
        use crate::Store;
        let gate = Arc::new(Gate::new(0));
        let committed = Committed {
            gate: gate.clone(),
            location: "test".into(),
            _committer: Box::new(()),
        };
        let state = crate::backend::local::state::State::new(10);
        let store = LocalStore::with_state(&Config::default(), state, Some(Box::new(committed)));
        // A key and a lock the failed commit leaves behind (in memory only).
        gate.committed(u64::MAX);
        store.put("k", Bytes::from("v")).await.unwrap();
        let lock = store.acquire("lock", Bytes::from("me")).await.unwrap();
        gate.failed(Error::Storage {
            path: "test".into(),
            message: "committing a write: disk full".into(),
            source: None,
        });
        let refused = |result: Result<()>| matches!(result, Err(Error::Storage { .. }));
        assert!(refused(store.delete("k").await));
        assert!(refused(store.delete_range("k").await));
        assert!(refused(store.atomic_delete("k", 1).await.map(drop)));
        assert!(refused(
            store.txn(crate::Txn::new().delete("k")).await.map(drop)
        ));
        assert!(refused(store.release(lock.session()).await));
        assert!(refused(store.put("k2", Bytes::from("v")).await));
        assert_eq!(
            store.get("k").await.unwrap().unwrap().value,
            "v",
            "nothing changed"
        );
        std::mem::forget(lock); // its background release would be refused as well
    }
}
