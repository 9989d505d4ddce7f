//! The conformance suite on the durable file store, one file per case, on
//! real time (its commits run on a thread of their own), and what only a
//! store on disk has: reopening, crashes, a file in use, damaged files.

use std::path::PathBuf;

use crate::conformance;

use conformance::{BackendTraits, Ctx};

/// A fresh path under cargo's scratch directory for integration tests.
pub(crate) fn scratch_file(case: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("file-store");
    std::fs::create_dir_all(&dir).expect("the scratch directory");
    let name = conformance::unique_prefix(case).replace('/', "_");
    dir.join(format!("{name}.redb"))
}

pub(crate) fn file_url(path: &std::path::Path) -> String {
    format!("file://{}", path.display())
}

async fn file_ctx(case: &str) -> Option<Ctx> {
    let path = scratch_file(case);
    let store = kvmesh::connect(&file_url(&path))
        .await
        .expect("a new file store opens");
    Some(Ctx::new(store, case, BackendTraits::MEMORY))
}

conformance::suite!(factory = file_ctx, test = tokio::test);

mod crash;
mod reopen;
