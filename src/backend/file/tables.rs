//! The file store's layout in redb: four tables, all named `kvmesh_*`.
//!
//! - `kvmesh_keys`: key → (version, TTL deadline in Unix ms, lock key?, value)
//! - `kvmesh_history`: sequence number → (version, key, value; none for a delete)
//! - `kvmesh_tombstones`: deleted key → the revision of its deletion
//! - `kvmesh_meta`: the format, and the counters of [`Marks`]

use std::path::Path;

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

use crate::backend::local::durable::Marks;
use crate::{Error, Result};

/// A stored key: its version, TTL deadline, whether a lock holds it, its value.
pub(super) type StoredKey<'a> = (u64, Option<u64>, bool, &'a [u8]);
/// A change of the history: its version, key and value (`None`: a delete).
pub(super) type StoredChange<'a> = (u64, &'a str, Option<&'a [u8]>);

pub(super) const KEYS: TableDefinition<&str, StoredKey<'static>> =
    TableDefinition::new("kvmesh_keys");
pub(super) const HISTORY: TableDefinition<u64, StoredChange<'static>> =
    TableDefinition::new("kvmesh_history");
pub(super) const TOMBSTONES: TableDefinition<&str, u64> = TableDefinition::new("kvmesh_tombstones");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("kvmesh_meta");

/// The layout version this build writes and reads.
const FORMAT: u64 = 1;

/// A [`Error::Storage`] for `path`.
pub(super) fn storage_error(
    path: &Path,
    what: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::Storage {
        path: path.to_owned(),
        message: format!("{what}: {source}"),
        source: Some(std::sync::Arc::new(source)),
    }
}

/// Reads the counters, first making the tables of a new file; refuses a
/// file of another program or of a later format.
pub(super) fn prepare(path: &Path, txn: &WriteTransaction) -> Result<Marks> {
    let error = |e: redb::Error| storage_error(path, "reading the store", e);
    let tables = txn.list_tables().map_err(|e| error(e.into()))?.count();
    let mut meta = txn.open_table(META).map_err(|e| error(e.into()))?;
    let format = meta
        .get("format")
        .map_err(|e| error(e.into()))?
        .map(|v| v.value());
    match format {
        Some(FORMAT) => {}
        None if tables == 0 => {
            meta.insert("format", FORMAT).map_err(|e| error(e.into()))?;
        }
        None => {
            return Err(Error::Storage {
                path: path.to_owned(),
                message: "a redb database, but not a kvmesh store (no kvmesh_meta table)".into(),
                source: None,
            });
        }
        Some(other) => {
            return Err(Error::Storage {
                path: path.to_owned(),
                message: format!(
                    "written in store format {other}; this kvmesh reads format {FORMAT}"
                ),
                source: None,
            });
        }
    }
    let read = |name: &str| -> Result<u64> {
        Ok(meta
            .get(name)
            .map_err(|e| error(e.into()))?
            .map_or(0, |v| v.value()))
    };
    Ok(Marks {
        revision: read("revision")?,
        seq: read("seq")?,
        history_compacted: read("history_compacted")?,
        history_compacted_seq: read("history_compacted_seq")?,
        tombstone_floor: read("tombstone_floor")?,
    })
}

/// Writes the counters.
pub(super) fn write_marks(
    meta: &mut Table<'_, &str, u64>,
    marks: &Marks,
) -> std::result::Result<(), redb::StorageError> {
    meta.insert("revision", marks.revision)?;
    meta.insert("seq", marks.seq)?;
    meta.insert("history_compacted", marks.history_compacted)?;
    meta.insert("history_compacted_seq", marks.history_compacted_seq)?;
    meta.insert("tombstone_floor", marks.tombstone_floor)?;
    Ok(())
}

/// Drops the history's changes at or below `seq`, which the store forgot.
pub(super) fn trim_history(
    history: &mut Table<'_, u64, StoredChange<'static>>,
    seq: u64,
) -> std::result::Result<(), redb::StorageError> {
    history.retain_in(..=seq, |_, _| false)
}
