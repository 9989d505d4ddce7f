//! Consul keys: an accepted key is sent as exactly that key.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|key: &str| {
    kvmesh::fuzzing::consul_key(key);
});
