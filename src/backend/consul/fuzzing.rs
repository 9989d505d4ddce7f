//! Entry points for `cargo fuzz` (feature `fuzzing`): Consul's reply
//! decoders and key encoding, exactly as the store uses them.

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::{HeaderMap, HeaderValue};

use super::entries::Entries;
use super::keys::{check_key, check_prefix, kv_path};
use super::wire::{self, KvEntry};
use crate::http::HttpReply;

/// Decodes `body` as every Consul reply kvmesh reads, with `index` as the
/// `X-Consul-Index` header and `status` as the status. Errors are fine;
/// panics are bugs.
pub(crate) fn reply(status: u16, index: &[u8], body: &[u8]) {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(index) {
        headers.insert("x-consul-index", value);
    }
    let reply = HttpReply {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        headers,
        body: Bytes::copy_from_slice(body),
    };
    let _ = wire::consul_index(&reply);
    let _ = wire::parse_bool(&reply, "fuzz");
    let _ = wire::classify(&reply, "fuzz", Some("key"));
    let by_serde = wire::parse_json::<Vec<KvEntry>>(&reply, "fuzz").map(Entries::from);
    // The fast path may give up, but what it accepts serde_json reads the same.
    if let Some(fast) = super::listing::decode(body) {
        assert_eq!(
            by_serde.as_ref().ok(),
            Some(&fast),
            "the fast path disagrees"
        );
    }
    if let Ok(entries) = by_serde {
        let _ = entries.into_sorted_pairs(|_| true);
    }
}

/// A key Consul accepts must reach `/v1/kv/` as exactly that key: its path
/// decodes back to it and carries no query or fragment.
pub(crate) fn key(key: &str) {
    let _ = check_prefix(key);
    if check_key(key).is_err() {
        return;
    }
    let path = kv_path(key);
    assert!(!path.contains(['?', '#']), "{key:?} -> {path:?}");
    let decoded = percent_encoding::percent_decode_str(&path)
        .decode_utf8()
        .expect("an encoded key decodes");
    assert_eq!(decoded.strip_prefix("/v1/kv/"), Some(key), "{path:?}");
}
