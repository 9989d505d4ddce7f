//! The file store's committer: one thread that takes everything the store
//! recorded since its last commit and writes it as one redb transaction
//! with immediate durability (fsync'd): group commit, so 32 writers in
//! flight share a few fsyncs, and each still returns only once its own
//! change is on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use redb::Database;

use super::tables::{self, HISTORY, KEYS, META, TOMBSTONES};
use crate::Result;
use crate::backend::memory::durable::Gate;
use crate::backend::memory::journal::{Batch, JournalReader};

/// The running committer; dropping it waits for its last commit.
#[derive(Debug)]
pub(super) struct Committer {
    thread: Option<JoinHandle<()>>,
}

impl Drop for Committer {
    fn drop(&mut self) {
        // The journal is gone by now (the store's state is dropped first),
        // so the thread commits what is left and ends; the file is closed
        // once this returns, so the next open in this process succeeds.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the committer of `db`.
pub(super) fn start(
    db: Database,
    path: PathBuf,
    reader: JournalReader,
    gate: Arc<Gate>,
) -> Result<Committer> {
    let thread_path = path.clone();
    let thread = std::thread::Builder::new()
        .name("kvmesh-file-commit".into())
        .spawn(move || run(&db, &thread_path, &reader, &gate))
        .map_err(|e| tables::storage_error(&path, "starting its committer", e))?;
    Ok(Committer {
        thread: Some(thread),
    })
}

fn run(db: &Database, path: &Path, reader: &JournalReader, gate: &Gate) {
    while let Some(batch) = reader.next_batch() {
        let span = tracing::debug_span!("file_commit", changes = batch.changes.len());
        let _entered = span.enter();
        match commit(db, &batch) {
            Ok(()) => gate.committed(batch.marks.revision),
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "file store commit failed; the store refuses further use");
                gate.failed(tables::storage_error(path, "committing a write", e));
                return;
            }
        }
    }
}

/// Writes one batch as one durable transaction.
fn commit(db: &Database, batch: &Batch) -> std::result::Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut keys = txn.open_table(KEYS)?;
        let mut history = txn.open_table(HISTORY)?;
        let mut tombstones = txn.open_table(TOMBSTONES)?;
        let mut meta = txn.open_table(META)?;
        for journaled in &batch.changes {
            let change = &journaled.change;
            let key = &*change.key;
            match &change.value {
                Some(value) => {
                    let stored = (
                        change.version,
                        journaled.expires_at_ms,
                        journaled.lock,
                        &value[..],
                    );
                    keys.insert(key, stored)?;
                    tombstones.remove(key)?;
                }
                None => {
                    keys.remove(key)?;
                    tombstones.insert(key, change.version)?;
                }
            }
            for forgotten in &journaled.forgotten_tombstones {
                tombstones.remove(&**forgotten)?;
            }
            let value = change.value.as_deref();
            history.insert(change.seq, (change.version, key, value))?;
        }
        tables::trim_history(&mut history, batch.marks.history_compacted_seq)?;
        tables::write_marks(&mut meta, &batch.marks)?;
    }
    txn.commit()?;
    Ok(())
}
