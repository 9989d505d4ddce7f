//! How far the file store's commits have come: a call returns, and a
//! change becomes visible to reads and watches, only once the commit that
//! holds it is on disk.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use tokio::sync::Notify;

use crate::backend::local::durable::Durability;
use crate::{Error, Result};

/// How far the commits have come, shared by the store and its committer.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// Every change up to this revision is on disk.
    durable: AtomicU64,
    /// Set once a commit failed: nothing after it will become durable.
    failed: OnceLock<Error>,
    progressed: Notify,
}

impl Gate {
    /// A gate with everything up to `revision` on disk already.
    pub(crate) fn new(revision: u64) -> Self {
        Gate {
            durable: AtomicU64::new(revision),
            ..Gate::default()
        }
    }

    /// Called by the committer once a commit up to `revision` is on disk.
    pub(crate) fn committed(&self, revision: u64) {
        self.durable.fetch_max(revision, Ordering::AcqRel);
        self.progressed.notify_waiters();
    }

    /// Called by the committer when a commit failed: every later wait fails.
    pub(crate) fn failed(&self, error: Error) {
        let _ = self.failed.set(error);
        self.progressed.notify_waiters();
    }

    /// The error of a failed commit, if one failed.
    pub(crate) fn check(&self) -> Result<()> {
        match self.failed.get() {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    /// Waits until every change up to `revision` is on disk.
    pub(crate) async fn wait(&self, revision: u64) -> Result<()> {
        if self.is_durable(revision) {
            return Ok(());
        }
        loop {
            let progressed = self.progressed.notified();
            tokio::pin!(progressed);
            // Registered before the checks, so a commit between them wakes it.
            progressed.as_mut().enable();
            if self.durable.load(Ordering::Acquire) >= revision {
                return Ok(());
            }
            self.check()?;
            progressed.await;
        }
    }

    /// True when every change up to `revision` is on disk.
    pub(crate) fn is_durable(&self, revision: u64) -> bool {
        self.durable.load(Ordering::Acquire) >= revision
    }
}

/// The file store's side of the engine's [`Durability`]: the gate, and the
/// committer, stopped (its last batch committed) when dropped.
#[derive(Debug)]
pub(crate) struct Committed {
    pub(crate) gate: std::sync::Arc<Gate>,
    /// The file's path, for `Debug`.
    pub(crate) location: String,
    pub(crate) _committer: Box<dyn std::fmt::Debug + Send + Sync>,
}

impl Durability for Committed {
    fn check(&self) -> Result<()> {
        self.gate.check()
    }

    fn is_durable(&self, revision: u64) -> bool {
        self.gate.is_durable(revision)
    }

    fn wait(&self, revision: u64) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.gate.wait(revision))
    }

    fn location(&self) -> &str {
        &self.location
    }
}
