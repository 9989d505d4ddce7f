//! etcd watch stream lines.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    kvmesh::fuzzing::etcd_watch_line(line);
});
