//! The backends, one folder each.

#[cfg(feature = "consul")]
pub(crate) mod consul;
#[cfg(feature = "etcd")]
pub(crate) mod etcd;
#[cfg(feature = "file")]
pub(crate) mod file;
pub(crate) mod local;
pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;
// In progress: built for its own tests until it joins `connect`.
#[cfg(all(feature = "zookeeper", test))]
pub(crate) mod zookeeper;
