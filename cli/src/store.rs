//! Which store `kv` opens: `--url`, `$KV_URL`, or a file store in the
//! user's data directory; a file store that another process has open is
//! waited for, up to `--wait`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvmesh::{Error, Store};

use crate::Failure;

/// The default file store: `<data dir>/kvmesh/kv.redb` (on Linux
/// `~/.local/share/kvmesh/kv.redb`).
pub(crate) fn default_path() -> Result<PathBuf, Failure> {
    let data = dirs::data_dir().ok_or(
        "no data directory is known for this user (set HOME), so there is no default \
         store: pass --url or set KV_URL",
    )?;
    Ok(data.join("kvmesh").join("kv.redb"))
}

/// The URL `kv` uses: the one given, or the default file store's.
pub(crate) fn url(given: Option<&str>) -> Result<String, Failure> {
    if let Some(url) = given.filter(|u| !u.is_empty()) {
        return Ok(url.to_owned());
    }
    let path = default_path()?;
    // A URL's path is percent-decoded: keep `%`, `?` and `#` in the path.
    let text = path.display().to_string();
    let escaped = text
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    Ok(format!("file://{escaped}"))
}

/// Opens `url`; a file store in use by another process is tried again
/// until `wait` has passed, then refused in one line that names the
/// holder and the way to share a store.
pub(crate) async fn open(url: &str, wait: Duration) -> Result<Arc<dyn Store>, Failure> {
    if url.starts_with("file://") {
        // The default store's directory, made on first use (not by `kv where`).
        if let Ok(path) = default_path()
            && url == self::url(None)?
            && let Some(dir) = path.parent()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    let deadline = Instant::now() + wait;
    loop {
        match kvmesh::connect(url).await {
            Ok(store) => return Ok(store),
            Err(Error::StoreInUse { path, holder, .. }) if Instant::now() >= deadline => {
                let who = holder.map_or_else(
                    || "another process".to_owned(),
                    |pid| format!("process {pid}"),
                );
                return Err(format!(
                    "the file store {} is in use by {who} (waited {wait:?}): a file store serves one \
                     process at a time; to share a store between processes use a server \
                     (KV_URL=etcd://…, consul://… or redis://…)",
                    path.display()
                )
                .into());
            }
            Err(Error::StoreInUse { .. }) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(error) => return Err(error.into()),
        }
    }
}
