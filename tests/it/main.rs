//! The integration tests that share servers without disturbing each other,
//! built as one binary (one link instead of eleven). The tests that kill
//! shared servers or count a whole process's connections stay binaries of
//! their own (`tests/*.rs`), so that cargo runs them one after another.

#[path = "../support/mod.rs"]
mod support;

mod conformance;

mod bad_replies;
mod cli;
mod consul;
mod consul_comes_back_empty;
mod etcd;
mod faults;
mod lock_safety;
mod memory;
mod secrets;
mod servers;
mod tls;
