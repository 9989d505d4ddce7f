//! The fast path of writing the requests kvmesh sends most: ranges, puts,
//! deletes and transactions.
//!
//! serde_json writes each of their strings through its escaping loop and
//! each field through its serializer, and its output buffer grows as it
//! goes; a transaction paid ~3,500 instructions for a body of 200 bytes
//! (callgrind). These bodies are names, base64 and digits, none of which
//! needs escaping, so they are written here as they are: the length is
//! counted first, then the bytes are written into a buffer of exactly that
//! size. A string that would need escaping (none does today) sends the whole
//! body to serde_json. Unit tests hold every body to serde_json's bytes.

use serde::Serialize;

use super::wire::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseIdRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest,
};
use crate::json::plain::plain_string_end;

/// A request body: serde_json's bytes unless the type writes its own.
pub(super) trait PlainRequest: Serialize {
    /// Writes the body into `sink`; `None` leaves it to serde_json (the
    /// default, for the requests sent rarely).
    fn write_plain(&self, _sink: &mut impl Sink) -> Option<()> {
        None
    }

    /// The body as JSON bytes.
    fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let mut counted = Counter::default();
        if self.write_plain(&mut counted).is_some() && counted.plain {
            let mut body = Vec::with_capacity(counted.len);
            self.write_plain(&mut body);
            debug_assert_eq!(body.len(), counted.len);
            return Ok(body);
        }
        serde_json::to_vec(self)
    }
}

/// Where a body is written: first counted, then stored.
pub(super) trait Sink {
    /// JSON as it is (names, punctuation, digits).
    fn raw(&mut self, json: &[u8]);

    /// A quoted string, as long as it needs no escaping.
    fn string(&mut self, text: &str);
}

/// Counts a body's bytes, and notes a string that needs escaping.
#[derive(Debug)]
struct Counter {
    len: usize,
    plain: bool,
}

impl Default for Counter {
    fn default() -> Self {
        Counter {
            len: 0,
            plain: true,
        }
    }
}

impl Sink for Counter {
    fn raw(&mut self, json: &[u8]) {
        self.len += json.len();
    }

    fn string(&mut self, text: &str) {
        self.plain &= plain_string_end(text.as_bytes()).is_none();
        self.len += text.len() + 2;
    }
}

impl Sink for Vec<u8> {
    fn raw(&mut self, json: &[u8]) {
        self.extend_from_slice(json);
    }

    fn string(&mut self, text: &str) {
        self.push(b'"');
        self.extend_from_slice(text.as_bytes());
        self.push(b'"');
    }
}

impl PlainRequest for LeaseGrantRequest {}
impl PlainRequest for LeaseIdRequest {}

/// Writes an integer, as serde_json does (the gateway takes int64 fields
/// as numbers or as quoted strings).
fn integer(sink: &mut impl Sink, n: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        sink.raw(b"-");
    }
    sink.raw(&digits[at..]);
}

/// Writes `"name":"text"` after a separator.
fn string_field(sink: &mut impl Sink, separator: &[u8], name: &[u8], text: &str) {
    sink.raw(separator);
    sink.raw(name);
    sink.string(text);
}

/// Writes `,"name":"text"` when there is a text (serde's
/// `skip_serializing_if = "Option::is_none"`).
fn optional_string_field(sink: &mut impl Sink, name: &[u8], text: Option<&str>) {
    if let Some(text) = text {
        string_field(sink, b",", name, text);
    }
}

/// Writes `,"name":n` unless `n` is 0 (serde's `skip_serializing_if =
/// "is_zero"`).
fn nonzero_integer_field(sink: &mut impl Sink, name: &[u8], n: i64) {
    if n != 0 {
        sink.raw(b",");
        sink.raw(name);
        integer(sink, n);
    }
}

/// Writes `items` as a JSON array.
fn array<T: PlainRequest>(sink: &mut impl Sink, items: &[T]) -> Option<()> {
    sink.raw(b"[");
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            sink.raw(b",");
        }
        item.write_plain(sink)?;
    }
    sink.raw(b"]");
    Some(())
}

impl PlainRequest for RangeRequest {
    fn write_plain(&self, sink: &mut impl Sink) -> Option<()> {
        string_field(sink, b"{", b"\"key\":", &self.key);
        optional_string_field(sink, b"\"range_end\":", self.range_end.as_deref());
        nonzero_integer_field(sink, b"\"revision\":", self.revision);
        sink.raw(b"}");
        Some(())
    }
}

impl PlainRequest for PutRequest {
    fn write_plain(&self, sink: &mut impl Sink) -> Option<()> {
        string_field(sink, b"{", b"\"key\":", &self.key);
        string_field(sink, b",", b"\"value\":", &self.value);
        nonzero_integer_field(sink, b"\"lease\":", self.lease);
        sink.raw(b"}");
        Some(())
    }
}

impl PlainRequest for DeleteRangeRequest {
    fn write_plain(&self, sink: &mut impl Sink) -> Option<()> {
        string_field(sink, b"{", b"\"key\":", &self.key);
        optional_string_field(sink, b"\"range_end\":", self.range_end.as_deref());
        sink.raw(b"}");
        Some(())
    }
}

impl PlainRequest for Compare {
    fn write_plain(&self, sink: &mut impl Sink) -> Option<()> {
        string_field(sink, b"{", b"\"key\":", &self.key);
        string_field(sink, b",", b"\"target\":", self.target);
        string_field(sink, b",", b"\"result\":", self.result);
        let (created, modified) = (&self.create_revision, &self.mod_revision);
        optional_string_field(sink, b"\"create_revision\":", created.as_deref());
        optional_string_field(sink, b"\"mod_revision\":", modified.as_deref());
        sink.raw(b"}");
        Some(())
    }
}

impl PlainRequest for RequestOp {
    fn write_plain(&self, sink: &mut impl Sink) -> Option<()> {
        match self {
            RequestOp::Put(put) => {
                sink.raw(b"{\"request_put\":");
                put.write_plain(sink)?;
            }
            RequestOp::DeleteRange(delete) => {
                sink.raw(b"{\"request_delete_range\":");
                delete.write_plain(sink)?;
            }
        }
        sink.raw(b"}");
        Some(())
    }
}

impl PlainRequest for TxnRequest {
    fn write_plain(&self, sink: &mut impl Sink) -> Option<()> {
        sink.raw(b"{\"compare\":");
        array(sink, &self.compare)?;
        sink.raw(b",\"success\":");
        array(sink, &self.success)?;
        if !self.failure.is_empty() {
            sink.raw(b",\"failure\":");
            array(sink, &self.failure)?;
        }
        sink.raw(b"}");
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::etcd::wire::b64;

    fn assert_as_serde<T: PlainRequest>(request: &T) {
        let ours = request.to_json().expect("a body");
        let serde = serde_json::to_vec(request).expect("a body");
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&serde)
        );
        assert_eq!(ours.capacity(), ours.len());
    }

    fn put(lease: i64) -> PutRequest {
        PutRequest {
            key: b64("a/1"),
            value: b64(b"\x00\xff value"),
            lease,
        }
    }

    #[test]
    fn writes_what_serde_writes() {
        for revision in [0, 7, i64::MAX, i64::MIN, -1] {
            for range_end in [None, Some(b64("a0"))] {
                assert_as_serde(&RangeRequest {
                    key: b64("a/"),
                    range_end: range_end.clone(),
                    revision,
                });
                assert_as_serde(&DeleteRangeRequest {
                    key: b64("a/"),
                    range_end,
                });
            }
            assert_as_serde(&put(revision));
        }
        let delete = || {
            RequestOp::DeleteRange(DeleteRangeRequest {
                key: b64("k"),
                range_end: None,
            })
        };
        for failure in [vec![], vec![delete(), RequestOp::Put(put(3))]] {
            assert_as_serde(&TxnRequest {
                compare: vec![
                    Compare::absent(b64("k")),
                    Compare::modified_at(b64("k"), u64::MAX),
                ],
                success: vec![RequestOp::Put(put(0)), delete()],
                failure,
            });
        }
        assert_as_serde(&TxnRequest {
            compare: vec![],
            success: vec![],
            failure: vec![],
        });
    }

    #[test]
    fn leaves_strings_that_need_escaping_to_serde() {
        for key in ["a\"b", "a\\b", "a\nb", "\u{1f}", "é"] {
            let request = RangeRequest {
                key: key.into(),
                range_end: None,
                revision: 0,
            };
            assert_eq!(
                request.to_json().expect("a body"),
                serde_json::to_vec(&request).expect("a body")
            );
        }
    }
}
