//! The backends, one folder each.

pub(crate) mod memory;
