//! The backends, one folder each.

pub(crate) mod consul;
pub(crate) mod etcd;
pub(crate) mod memory;
