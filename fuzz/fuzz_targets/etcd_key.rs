//! etcd keys and prefix ranges: a key (UTF-8), a NUL, another key's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (key, other) = match data.iter().position(|b| *b == 0) {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (data, &b""[..]),
    };
    if let Ok(key) = std::str::from_utf8(key) {
        kvmesh::fuzzing::etcd_key(key, other);
    }
});
