//! Entry points for `cargo fuzz` (`fuzz/`, feature `fuzzing`): the reply
//! decoders and key encodings, called exactly as the stores call them. Not a
//! public API.

/// Consul: a reply with this status, `X-Consul-Index` and body.
pub fn consul_reply(status: u16, index: &[u8], body: &[u8]) {
    crate::backend::consul::fuzzing::reply(status, index, body);
}

/// Consul: a key accepted is sent as exactly that key.
pub fn consul_key(key: &str) {
    crate::backend::consul::fuzzing::key(key);
}

/// etcd: a gateway reply with this status and body.
pub fn etcd_reply(status: u16, body: &[u8]) {
    crate::backend::etcd::fuzzing::reply(status, body);
}

/// etcd: one line of a watch stream.
pub fn etcd_watch_line(line: &[u8]) {
    crate::backend::etcd::fuzzing::watch_line(line);
}

/// etcd: a key is never a range; a prefix's range is exactly its keys.
pub fn etcd_key(key: &str, other: &[u8]) {
    crate::backend::etcd::fuzzing::key(key, other);
}
