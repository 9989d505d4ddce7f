//! A handle on a memory store that does not keep it open: the file store's
//! registry of the files this process has open holds these.

use std::sync::{Arc, Weak};

use super::{MemoryStore, Shared};

/// A [`MemoryStore`] that does not keep it open: the file store's
/// registry of the files this process has open.
#[derive(Debug, Clone)]
pub(crate) struct WeakMemoryStore {
    shared: Weak<Shared>,
    max_value_size: Option<usize>,
    backend: &'static str,
}

impl WeakMemoryStore {
    /// True while a handle on the store lives.
    pub(crate) fn is_open(&self) -> bool {
        self.shared.strong_count() > 0
    }

    /// The store, if a handle on it still lives.
    pub(crate) fn upgrade(&self) -> Option<MemoryStore> {
        Some(MemoryStore {
            shared: self.shared.upgrade()?,
            max_value_size: self.max_value_size,
            backend: self.backend,
        })
    }
}

impl MemoryStore {
    /// A handle that does not keep the store open.
    pub(crate) fn downgrade(&self) -> WeakMemoryStore {
        WeakMemoryStore {
            shared: Arc::downgrade(&self.shared),
            max_value_size: self.max_value_size,
            backend: self.backend,
        }
    }
}
