//! The embedded in-process store (`memory://`), the default backend: the
//! local engine (`backend/local/`) with nothing kept beyond the process.

use crate::Config;
use crate::backend::local::LocalStore;

/// A new, empty memory store.
pub(crate) fn open(config: &Config) -> LocalStore {
    LocalStore::new(config)
}
