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

/// The two local stores share one engine; `Debug` still says which is which,
/// and where the file store keeps its data.
#[tokio::test]
async fn debug_says_which_local_store_it_is() {
    let path = scratch_file("debug_names");
    let file = kvmesh::connect(&file_url(&path)).await.expect("file store");
    let shown = format!("{file:?}");
    assert!(shown.starts_with("FileStore"), "{shown}");
    assert!(shown.contains(&path.display().to_string()), "{shown}");
    let memory = kvmesh::connect("memory://").await.expect("memory store");
    let shown = format!("{memory:?}");
    assert!(shown.starts_with("MemoryStore"), "{shown}");
    assert!(!shown.contains("location"), "{shown}");
}

mod crash;
mod reopen;
