//! A handle on a local store that does not keep it open: the file store's
//! registry of the files this process has open holds these.

use std::sync::{Arc, Weak};

use super::{LocalStore, Shared};

/// A [`LocalStore`] that does not keep it open: the file store's
/// registry of the files this process has open.
#[derive(Debug, Clone)]
pub(crate) struct WeakLocalStore {
    shared: Weak<Shared>,
    max_value_size: Option<usize>,
    backend: &'static str,
}

impl WeakLocalStore {
    /// True while a handle on the store lives.
    pub(crate) fn is_open(&self) -> bool {
        self.shared.strong_count() > 0
    }

    /// The store, if a handle on it still lives.
    pub(crate) fn upgrade(&self) -> Option<LocalStore> {
        Some(LocalStore {
            shared: self.shared.upgrade()?,
            max_value_size: self.max_value_size,
            backend: self.backend,
        })
    }
}

impl LocalStore {
    /// A handle that does not keep the store open.
    pub(crate) fn downgrade(&self) -> WeakLocalStore {
        WeakLocalStore {
            shared: Arc::downgrade(&self.shared),
            max_value_size: self.max_value_size,
            backend: self.backend,
        }
    }
}
