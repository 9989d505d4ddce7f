//! The file store's committer: one thread that takes everything the store
//! recorded since its last commit and writes it as one redb transaction
//! with immediate durability (fsync'd): group commit, so 32 writers in
//! flight share a few fsyncs, and each still returns only once its own
//! change is on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use std::panic::AssertUnwindSafe;

use redb::{Database, Durability};

use super::gate::Gate;
use super::journal::{Batch, JournalReader};
use super::tables::{self, HISTORY, KEYS, META, TOMBSTONES};
use crate::Result;

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
        .spawn(move || run(&thread_path, &reader, &gate, |batch| commit(&db, batch)))
        .map_err(|e| tables::storage_error(&path, "starting its committer", e))?;
    Ok(Committer {
        thread: Some(thread),
    })
}

/// Commits each batch with `commit` until the journal ends. A commit that
/// fails, or panics (redb can), fails the gate: every call waiting on it,
/// and every later one, gets `Error::Storage` instead of hanging.
fn run(
    path: &Path,
    reader: &JournalReader,
    gate: &Gate,
    commit: impl Fn(&Batch) -> std::result::Result<(), redb::Error>,
) {
    while let Some(batch) = reader.next_batch() {
        let span = tracing::debug_span!("file_commit", changes = batch.changes.len());
        let _entered = span.enter();
        let committed = std::panic::catch_unwind(AssertUnwindSafe(|| commit(&batch)));
        let error = match committed {
            Ok(Ok(())) => {
                gate.committed(batch.marks.revision);
                continue;
            }
            Ok(Err(e)) => tables::storage_error(path, "committing a write", e),
            Err(_) => crate::Error::Storage {
                path: path.to_owned(),
                message: "committing a write: redb panicked".into(),
                source: None,
            },
        };
        tracing::error!(%error, "file store commit failed; the store refuses further use");
        gate.failed(error);
        return;
    }
}

/// Writes one batch as one durable transaction.
fn commit(db: &Database, batch: &Batch) -> std::result::Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    // redb's default, said here: the commit returns once fsync'd.
    txn.set_durability(Durability::Immediate)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::file::journal::journal;

    /// A committer whose commit panics fails the gate; nothing waits forever.
    #[tokio::test]
    async fn a_panicking_commit_fails_the_gate() {
        let (journal, reader) = journal();
        let gate = Arc::new(Gate::new(0));
        let thread_gate = gate.clone();
        let thread = std::thread::spawn(move || {
            run(Path::new("/tmp/a.redb"), &reader, &thread_gate, |_| {
                panic!("redb panicked")
            })
        });
        journal.record_test_change(1);
        drop(journal);
        let waited = tokio::time::timeout(std::time::Duration::from_secs(10), gate.wait(1)).await;
        match waited {
            Ok(Err(crate::Error::Storage { message, .. })) => assert!(message.contains("panicked")),
            other => panic!("expected a storage error, got {other:?}"),
        }
        assert!(gate.check().is_err(), "every later call is refused");
        thread.join().unwrap();
    }
}
