//! Entry points for `cargo fuzz` (feature `fuzzing`): etcd's gateway reply
//! and watch-line decoders and key encoding, exactly as the store uses them.

use base64::Engine;
use bytes::Bytes;
use hyper::StatusCode;

use super::client::range_of;
use super::keys::prefix_end;
use super::plain_reply::PlainReply;
use super::wire::{self, HeaderOnly, RangeResponse, TxnResponse};
use crate::http::HttpReply;

/// Decodes `body` as the gateway replies kvmesh reads. Errors are fine;
/// panics are bugs.
pub(crate) fn reply(status: u16, body: &[u8]) {
    let reply = HttpReply {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        headers: Default::default(),
        body: Bytes::copy_from_slice(body),
    };
    let _ = wire::classify(&reply, "fuzz");
    let range = agreed::<RangeResponse>(&reply);
    if let Ok(range) = range {
        for kv in range.kvs {
            let _ = kv.key_text();
            let _ = kv.version();
            let _ = kv.into_pair();
        }
    }
    let _ = agreed::<HeaderOnly>(&reply);
    let _ = agreed::<TxnResponse>(&reply);
}

/// serde_json's reading of `reply`, after checking that the fast path
/// either gives up or reads the same.
fn agreed<T>(reply: &HttpReply) -> crate::Result<T>
where
    T: PlainReply + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let by_serde = wire::parse::<T>(reply, "fuzz");
    if let Some(fast) = T::read_plain(&reply.body) {
        assert_eq!(
            by_serde.as_ref().ok(),
            Some(&fast),
            "the fast path disagrees"
        );
    }
    by_serde
}

/// Decodes one watch stream line.
pub(crate) fn watch_line(line: &[u8]) {
    super::stream::decode_line(line);
}

/// A key is sent as exactly its bytes, never as a range; a prefix's range
/// covers exactly the keys that start with it.
pub(crate) fn key(key: &str, other: &[u8]) {
    let engine = base64::engine::general_purpose::STANDARD;
    let (encoded, end) = range_of(key, false);
    assert!(end.is_none(), "a key is never a range");
    assert_eq!(engine.decode(encoded).ok().as_deref(), Some(key.as_bytes()));
    if key.is_empty() {
        return;
    }
    let end = prefix_end(key.as_bytes());
    let inside = other.starts_with(key.as_bytes());
    let below_end = end.is_empty() || other < end.as_slice();
    let in_range = other >= key.as_bytes() && below_end;
    assert_eq!(inside, in_range, "{key:?} / {other:?} / end {end:?}");
}
