//! Reading a file store back into the engine's state: the counters,
//! the keys, the history and the tombstones, as the last commit left them.

use std::path::Path;

use bytes::Bytes;
use redb::{Database, ReadableTable};

use super::clock;
use super::tables::{self, HISTORY, KEYS, META, TOMBSTONES, storage_error};
use crate::Result;
use crate::backend::local::change::{Change, Key};
use crate::backend::local::state::State;

/// The state stored in `db`, and the keys locks held when it was last
/// open (their holders are gone: the caller deletes them). A new file gets
/// the store's tables.
pub(super) fn load(path: &Path, db: &Database, history_limit: usize) -> Result<(State, Vec<Key>)> {
    let error = |e: redb::Error| storage_error(path, "reading the store", e);
    let txn = db.begin_write().map_err(|e| error(e.into()))?;
    let marks = tables::prepare(path, &txn)?;
    let mut state = State::new(history_limit);
    state.restore_marks(marks);
    let mut lock_keys = Vec::new();
    {
        let keys = txn.open_table(KEYS).map_err(|e| error(e.into()))?;
        for row in keys.iter().map_err(|e| error(e.into()))? {
            let (key, stored) = row.map_err(|e| error(e.into()))?;
            let key = key.value();
            let (version, expires_at_ms, lock, value) = stored.value();
            let expires_at = expires_at_ms.map(clock::from_unix_ms);
            state.restore_key(key, Bytes::copy_from_slice(value), version, expires_at);
            if lock {
                lock_keys.push(Key::from(key));
            }
        }

        let mut history = txn.open_table(HISTORY).map_err(|e| error(e.into()))?;
        for row in history.iter().map_err(|e| error(e.into()))? {
            let (seq, stored) = row.map_err(|e| error(e.into()))?;
            let (version, key, value) = stored.value();
            state.restore_change(Change {
                key: Key::from(key),
                value: value.map(Bytes::copy_from_slice),
                version,
                seq: seq.value(),
            });
        }
        // A smaller history than last time: the older changes go.
        let (_, compacted_seq) = state.history_compacted();
        tables::trim_history(&mut history, compacted_seq).map_err(|e| error(e.into()))?;

        let mut tombstones = txn.open_table(TOMBSTONES).map_err(|e| error(e.into()))?;
        let mut forgotten = Vec::new();
        for row in tombstones.iter().map_err(|e| error(e.into()))? {
            let (key, version) = row.map_err(|e| error(e.into()))?;
            forgotten.extend(state.restore_tombstone(key.value(), version.value()));
        }
        for key in forgotten {
            tombstones.remove(&*key).map_err(|e| error(e.into()))?;
        }
        // The history and tombstones may have moved their floors.
        let mut meta = txn.open_table(META).map_err(|e| error(e.into()))?;
        tables::write_marks(&mut meta, &state.marks()).map_err(|e| error(e.into()))?;
    }
    txn.commit().map_err(|e| error(e.into()))?;
    Ok((state, lock_keys))
}
