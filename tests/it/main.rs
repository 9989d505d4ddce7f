//! The integration tests that share servers without disturbing each other,
//! built as one binary (one link instead of eleven). The tests that kill
//! shared servers or count a whole process's connections stay binaries of
//! their own (`tests/*.rs`), so that cargo runs them one after another.
//! A module that needs a backend is built with that backend's feature.

#[path = "../support/mod.rs"]
mod support;

mod conformance;

#[cfg(all(feature = "consul", feature = "etcd"))]
mod bad_replies;
#[cfg(feature = "consul")]
mod consul;
#[cfg(feature = "consul")]
mod consul_comes_back_empty;
#[cfg(feature = "etcd")]
mod etcd;
#[cfg(all(feature = "consul", feature = "etcd"))]
mod faults;
#[cfg(feature = "file")]
mod file;
#[cfg(all(feature = "consul", feature = "etcd"))]
mod interop;
#[cfg(all(feature = "consul", feature = "etcd"))]
mod lock_safety;
mod memory;
#[cfg(any(
    feature = "consul",
    feature = "etcd",
    feature = "redis",
    feature = "zookeeper"
))]
mod partition;
#[cfg(feature = "redis")]
mod redis;
#[cfg(all(feature = "consul", feature = "etcd"))]
mod secrets;
#[cfg(all(feature = "consul", feature = "etcd"))]
mod servers;
#[cfg(all(feature = "consul", feature = "etcd", feature = "tls"))]
mod tls;
#[cfg(all(feature = "consul", feature = "etcd", feature = "redis"))]
mod wrong_server;
#[cfg(feature = "zookeeper")]
mod zookeeper;
