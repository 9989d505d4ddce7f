//! The fast path of reading the replies kvmesh gets most: ranges (every
//! `get`, `exists` and `get_range`), puts and transactions.
//!
//! etcd's gateway writes flat JSON whose numbers are quoted strings, and
//! serde_json spends most of a range on its strings one by one (names,
//! quoted numbers, base64). This reads that shape with
//! [`PlainReader`]: only what serde_json reads the same way, and `None` on
//! anything else (an escape, a signed or zero-led number, a field twice,
//! deep nesting), after which [`super::wire::parse`] uses serde_json.

use super::stream::{WatchEvent, WatchLine, WatchResult};
use super::wire::{Header, HeaderOnly, KeyValue, RangeResponse, TxnResponse};
use bytes::Bytes;

use crate::base64_bytes::{self, ValueBatch};
use crate::json::compact::CompactReader;
use crate::json::plain::{PlainReader, field_names, is_utf8};

/// How deep a value kvmesh does not use may nest and still be skipped
/// here (a txn's responses are 4 deep).
const SKIP_DEPTH: usize = 8;

/// A reply read by the fast path; the default reads nothing.
pub(super) trait PlainReply: Sized {
    fn read_plain(_body: &[u8]) -> Option<Self> {
        None
    }
}

/// Reads a whole body with `read`, which must consume one value.
fn whole<'a, T>(body: &'a [u8], read: impl FnOnce(&mut PlainReader<'a>) -> Option<T>) -> Option<T> {
    let mut reader = PlainReader::new(body);
    let value = read(&mut reader)?;
    reader.at_end().then_some(value)
}

/// Sets `slot` once; a field twice is serde's to judge.
fn once<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value?);
    Some(())
}

field_names! {
    /// A response header's fields.
    HeaderField {
        ClusterId = "cluster_id",
        MemberId = "member_id",
        Revision = "revision",
        RaftTerm = "raft_term",
    }

    /// A key-value's fields.
    KvField {
        Key = "key",
        CreateRevision = "create_revision",
        ModRevision = "mod_revision",
        Version = "version",
        Value = "value",
        Lease = "lease",
    }

    /// The fields of a watch line.
    LineField {
        Result = "result",
        Error = "error",
    }

    /// The fields of a watch result, in etcd's order.
    ResultField {
        Header = "header",
        WatchId = "watch_id",
        Created = "created",
        Canceled = "canceled",
        CompactRevision = "compact_revision",
        CancelReason = "cancel_reason",
        Fragment = "fragment",
        Events = "events",
    }

    /// The fields of a watch event.
    EventField {
        Type = "type",
        Kv = "kv",
    }

    /// The fields of range, put and txn replies that kvmesh reads.
    ReplyField {
        Header = "header",
        Kvs = "kvs",
        Succeeded = "succeeded",
    }
}

fn header(reader: &mut PlainReader<'_>) -> Option<Header> {
    let mut revision = None;
    reader.object_in_order(|reader, name| match name {
        Ok(HeaderField::Revision) => once(&mut revision, reader.int64()),
        _ => skip_field(reader, name),
    })?;
    Some(Header {
        revision: revision.unwrap_or_default(),
    })
}

/// A field kvmesh does not read (serde_json checks that a name is UTF-8;
/// the names in the field lists are).
fn skip_field<F>(reader: &mut PlainReader<'_>, name: Result<F, &[u8]>) -> Option<()> {
    if let Err(name) = name {
        is_utf8(name).then_some(())?;
    }
    reader.skip_any(SKIP_DEPTH)
}

/// One key-value: as the gateway writes it if it can, field by field if
/// not.
fn key_value<'a>(reader: &mut PlainReader<'a>) -> Option<PendingKeyValue<'a>> {
    if let Some(kv) = reader.compact(compact_key_value) {
        return Some(kv);
    }
    key_value_by_fields(reader)
}

/// Base64 text, decoded (base64 is ASCII: decoding it checks what UTF-8
/// would).
fn base64(reader: &mut PlainReader<'_>) -> Option<Vec<u8>> {
    base64_bytes::decode_vec(reader.plain_bytes()?).ok()
}

/// A key-value read with [`key_value`], its value decoded by itself.
fn decoded((mut kv, value): PendingKeyValue<'_>) -> Option<KeyValue> {
    if let Some(text) = value {
        kv.value = base64_bytes::decode(text).ok()?;
    }
    Some(kv)
}

/// A key-value (its `value` empty) and its value's base64 text, not yet
/// decoded.
type PendingKeyValue<'a> = (KeyValue, Option<&'a [u8]>);

/// The array of key-values of a range reply of `entries` entries: several
/// values are decoded together once the array is read, a few one by one
/// as they come.
fn key_values(reader: &mut PlainReader<'_>, entries: usize) -> Option<Vec<KeyValue>> {
    let mut kvs = Vec::with_capacity(entries);
    let mut batch = ValueBatch::for_entries(entries);
    reader.array(|reader| {
        let (kv, value) = key_value(reader)?;
        let kv = match &mut batch {
            Some(batch) => {
                batch.push(value);
                kv
            }
            None => decoded((kv, value))?,
        };
        kvs.push(kv);
        Some(())
    })?;
    if let Some(batch) = batch {
        let mut slots = kvs.iter_mut();
        batch
            .decode(|value| {
                if let (Some(kv), Some(value)) = (slots.next(), value) {
                    kv.value = value;
                }
            })
            .ok()?;
    }
    Some(kvs)
}

/// A key-value exactly as the gateway writes it: compact, every field in
/// its place, numbers quoted, `value` left out when empty and `lease` when
/// there is none. Each step is a few word compares (callgrind: a third of
/// reading it with whitespace skipped before every part).
#[inline(always)]
fn compact_key_value<'a>(reader: &mut CompactReader<'a>) -> Option<PendingKeyValue<'a>> {
    reader.tag(b"{\"key\":\"")?;
    // Base64 is ASCII: decoding it checks what UTF-8 and JSON would.
    let key = base64_bytes::decode_vec(reader.base64_text()?).ok()?;
    reader.tag(b",\"create_revision\":\"")?;
    let create_revision = quoted_int64(reader)?;
    reader.tag(b",\"mod_revision\":\"")?;
    let mod_revision = quoted_int64(reader)?;
    reader.tag(b",\"version\":\"")?;
    quoted_int64(reader)?;
    let value = match reader.consume(b",\"value\":\"") {
        true => Some(reader.base64_text()?),
        false => None,
    };
    let lease = match reader.consume(b",\"lease\":\"") {
        true => quoted_int64(reader)?,
        false => 0,
    };
    reader.tag(b"}")?;
    let kv = KeyValue {
        key,
        value: Bytes::new(),
        mod_revision,
        create_revision,
        lease,
    };
    Some((kv, value))
}

/// The rest of a quoted int64 whose opening quote is consumed: digits (no
/// sign, no leading zero) and the closing quote.
#[inline(always)]
fn quoted_int64(reader: &mut CompactReader<'_>) -> Option<i64> {
    let value = i64::try_from(reader.integer()?).ok()?;
    reader.tag(b"\"")?;
    Some(value)
}

/// A key-value read field by field, in any order.
fn key_value_by_fields<'a>(reader: &mut PlainReader<'a>) -> Option<PendingKeyValue<'a>> {
    let (mut key, mut value) = (None, None);
    let (mut mod_revision, mut create_revision, mut lease) = (None, None, None);
    reader.object_in_order(|reader, name| match name {
        Ok(KvField::Key) => once(&mut key, base64(reader)),
        Ok(KvField::Value) => once(&mut value, reader.plain_bytes()),
        Ok(KvField::ModRevision) => once(&mut mod_revision, reader.int64()),
        Ok(KvField::CreateRevision) => once(&mut create_revision, reader.int64()),
        Ok(KvField::Lease) => once(&mut lease, reader.int64()),
        _ => skip_field(reader, name),
    })?;
    let kv = KeyValue {
        key: key.unwrap_or_default(),
        value: Bytes::new(),
        mod_revision: mod_revision.unwrap_or_default(),
        create_revision: create_revision.unwrap_or_default(),
        lease: lease.unwrap_or_default(),
    };
    Some((kv, value))
}

impl PlainReply for RangeResponse {
    fn read_plain(body: &[u8]) -> Option<Self> {
        // One object per entry, plus the reply and its header (a key with
        // a brace in it only over-reserves).
        let objects = memchr::memchr_iter(b'{', body).count();
        whole(body, |reader| {
            let (mut head, mut kvs) = (None, None);
            reader.object_in_order(|reader, name| match name {
                Ok(ReplyField::Header) => once(&mut head, header(reader)),
                Ok(ReplyField::Kvs) => {
                    once(&mut kvs, key_values(reader, objects.saturating_sub(2)))
                }
                _ => skip_field(reader, name),
            })?;
            Some(RangeResponse {
                header: head.unwrap_or_default(),
                kvs: kvs.unwrap_or_default(),
            })
        })
    }
}

impl PlainReply for HeaderOnly {
    fn read_plain(body: &[u8]) -> Option<Self> {
        whole(body, |reader| {
            let mut head = None;
            reader.object_in_order(|reader, name| match name {
                Ok(ReplyField::Header) => once(&mut head, header(reader)),
                _ => skip_field(reader, name),
            })?;
            Some(HeaderOnly {
                header: head.unwrap_or_default(),
            })
        })
    }
}

impl PlainReply for TxnResponse {
    fn read_plain(body: &[u8]) -> Option<Self> {
        whole(body, |reader| {
            let mut succeeded = None;
            reader.object_in_order(|reader, name| match name {
                Ok(ReplyField::Succeeded) => once(&mut succeeded, boolean(reader)),
                _ => skip_field(reader, name),
            })?;
            Some(TxnResponse {
                succeeded: succeeded.unwrap_or_default(),
            })
        })
    }
}

/// `true` or `false`.
fn boolean(reader: &mut PlainReader<'_>) -> Option<bool> {
    if reader.consume(b"true") {
        Some(true)
    } else {
        reader.consume(b"false").then_some(false)
    }
}

/// A watch line: a result (an event batch, a progress notification, a
/// creation). A stream error, a cancellation or a compaction are left to
/// serde_json: they are rare, and some hold values kvmesh reads as JSON.
impl PlainReply for WatchLine {
    fn read_plain(body: &[u8]) -> Option<Self> {
        whole(body, |reader| {
            let mut result = None;
            reader.object_in_order(|reader, name| match name {
                Ok(LineField::Result) => once(&mut result, watch_result(reader)),
                Ok(LineField::Error) => None,
                _ => skip_field(reader, name),
            })?;
            Some(WatchLine {
                result,
                error: None,
            })
        })
    }
}

fn watch_result(reader: &mut PlainReader<'_>) -> Option<WatchResult> {
    let (mut head, mut created, mut canceled) = (None, None, None);
    let (mut fragment, mut events) = (None, None);
    reader.object_in_order(|reader, name| match name {
        Ok(ResultField::Header) => once(&mut head, header(reader)),
        Ok(ResultField::WatchId) => reader.int64().map(drop),
        Ok(ResultField::Created) => once(&mut created, boolean(reader)),
        // A cancellation ends the stream: serde_json reads it.
        Ok(ResultField::Canceled) => once(&mut canceled, boolean(reader).filter(|c| !c)),
        Ok(ResultField::CompactRevision | ResultField::CancelReason) => None,
        Ok(ResultField::Fragment) => once(&mut fragment, boolean(reader)),
        Ok(ResultField::Events) => {
            let mut list = Vec::new();
            let read = reader.array(|reader| watch_event(reader).map(|e| list.push(e)));
            once(&mut events, read.map(|()| list))
        }
        Err(_) => skip_field(reader, name),
    })?;
    Some(WatchResult {
        header: head.unwrap_or_default(),
        created: created.unwrap_or_default(),
        fragment: fragment.unwrap_or_default(),
        events: events.unwrap_or_default(),
        ..WatchResult::default()
    })
}

fn watch_event(reader: &mut PlainReader<'_>) -> Option<WatchEvent> {
    let (mut kind, mut kv) = (None, None);
    reader.object_in_order(|reader, name| match name {
        Ok(EventField::Type) => once(&mut kind, reader.plain_string().map(str::to_owned)),
        Ok(EventField::Kv) => once(&mut kv, key_value(reader).and_then(decoded)),
        _ => skip_field(reader, name),
    })?;
    Some(WatchEvent { kind, kv: kv? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    /// The fast path either agrees with serde_json or gives up.
    fn agrees<T: PlainReply + DeserializeOwned + PartialEq + std::fmt::Debug>(body: &str) -> bool {
        match T::read_plain(body.as_bytes()) {
            Some(fast) => serde_json::from_str::<T>(body).ok() == Some(fast),
            None => true,
        }
    }

    const RANGE: &str = r#"{"header":{"cluster_id":"14443903163313418560","member_id":"11417610130673999598","revision":"13449","raft_term":"3"},"kvs":[{"key":"YS8x","create_revision":"12954","mod_revision":"13350","version":"4","value":"aGVsbG8="},{"key":"YS8y","create_revision":"5","mod_revision":"6","version":"1","lease":"7587"}],"more":true,"count":"100"}"#;

    const HEADER: &str = r#"{"cluster_id":"14443903163313418560","member_id":"11417610130673999598","revision":"26745","raft_term":"2"}"#;

    #[test]
    fn reads_watch_lines_as_serde_does() {
        let lines = [
            format!(r#"{{"result":{{"header":{HEADER},"created":true}}}}"#),
            format!(
                r#"{{"result":{{"header":{HEADER},"events":[{{"kv":{{"key":"enp6L2E=","create_revision":"26745","mod_revision":"26745","version":"1","value":"djE="}}}}]}}}}"#
            ),
            format!(
                r#"{{"result":{{"header":{HEADER},"events":[{{"type":"DELETE","kv":{{"key":"enp6L2E=","mod_revision":"26746"}}}},{{"kv":{{"key":"YQ==","mod_revision":"9"}},"prev_kv":{{"key":"YQ=="}}}}]}}}}"#
            ),
            format!(
                r#"{{"result":{{"header":{HEADER},"watch_id":"3","canceled":false,"fragment":true,"events":[]}}}}"#
            ),
            format!(r#"{{"result":{{"header":{HEADER}}}}}"#),
            r#"{"result":{}}"#.into(),
            "{}".into(),
        ];
        for line in &lines {
            let fast = WatchLine::read_plain(line.as_bytes()).expect(line);
            assert_eq!(Some(fast), serde_json::from_str(line).ok(), "{line}");
            for end in 0..line.len() {
                assert!(agrees::<WatchLine>(&line[..end]), "{}", &line[..end]);
            }
        }
        let deleted = WatchLine::read_plain(lines[2].as_bytes()).and_then(|l| l.result);
        let events = deleted.map(|r| r.events).unwrap_or_default();
        assert_eq!(events[0].kind.as_deref(), Some("DELETE"));
        assert_eq!(events[1].kv.mod_revision, 9);
    }

    #[test]
    fn leaves_errors_and_cancellations_to_serde() {
        for line in [
            r#"{"error":{"grpc_code":14,"message":"etcdserver: no leader"}}"#,
            r#"{"result":{"canceled":true,"cancel_reason":"permission denied"}}"#,
            r#"{"result":{"canceled":true,"compact_revision":"12"}}"#,
            r#"{"result":{"canceled":false,"canceled":false}}"#,
            r#"{"result":{"created":true,"created":true}}"#,
            r#"{"result":{"events":[{"type":null,"kv":{}}]}}"#,
            r#"{"result":{"events":[{"type":"DELETE"}]}}"#,
            r#"{"result":{"events":null}}"#,
            r#"{"result":null}"#,
        ] {
            assert!(WatchLine::read_plain(line.as_bytes()).is_none(), "{line}");
            assert!(agrees::<WatchLine>(line), "{line}");
        }
    }

    #[test]
    fn reads_ranges_as_serde_does() {
        let fast = RangeResponse::read_plain(RANGE.as_bytes()).expect("the plain shape");
        assert_eq!(fast.header.revision, 13449);
        assert_eq!(fast.kvs[0].value, &b"hello"[..]);
        assert_eq!(fast.kvs[1].lease, 7587);
        assert!(fast.kvs[1].value.is_empty());
        for body in [
            RANGE,
            r#"{"header":{"revision":"2"}}"#,
            r#"{"header":{"revision":2},"kvs":[]}"#,
            "{}",
            " {\n \"header\" : { \"revision\" : \"9\" } } \n",
        ] {
            let fast = RangeResponse::read_plain(body.as_bytes()).expect(body);
            assert_eq!(Some(fast), serde_json::from_str(body).ok(), "{body}");
        }
    }

    #[test]
    fn reads_puts_and_txns_as_serde_does() {
        for body in [
            r#"{"header":{"cluster_id":"1","member_id":"2","revision":"30","raft_term":"3"}}"#,
            r#"{"header":{"revision":"31"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"31"}}}]}"#,
            r#"{"header":{"revision":"31"},"succeeded":false,"responses":[{"response_range":{"header":{},"kvs":[{"key":"YQ=="}],"count":"1"}}]}"#,
        ] {
            assert!(HeaderOnly::read_plain(body.as_bytes()).is_some(), "{body}");
            assert!(TxnResponse::read_plain(body.as_bytes()).is_some(), "{body}");
            assert!(agrees::<HeaderOnly>(body), "{body}");
            assert!(agrees::<TxnResponse>(body), "{body}");
        }
    }

    #[test]
    fn gives_up_on_anything_serde_must_judge() {
        for body in [
            r#"{"header":{"revision":"-1"}}"#,
            r#"{"header":{"revision":"01"}}"#,
            r#"{"header":{"revision":"1e3"}}"#,
            r#"{"header":{"revision":null}}"#,
            r#"{"header":{"revision":"1","revision":"2"}}"#,
            r#"{"header":{},"header":{}}"#,
            r#"{"kvs":[{"key":"YQ==","key":"Yg=="}]}"#,
            r#"{"kvs":[{"key":"not base64"}]}"#,
            r#"{"kvs":[{"key":null}]}"#,
            r#"{"kvs":[{"key":"a\u0062"}]}"#,
            r#"{"kvs":{}}"#,
            r#"{"x":[[[[[[[[[[1]]]]]]]]]]}"#,
            r#"{"header":{"revision":"9223372036854775808"}}"#,
            r#"{} x"#,
            r#"[]"#,
            "",
        ] {
            assert!(
                RangeResponse::read_plain(body.as_bytes()).is_none(),
                "{body}"
            );
            assert!(agrees::<RangeResponse>(body), "{body}");
            assert!(agrees::<HeaderOnly>(body), "{body}");
            assert!(agrees::<TxnResponse>(body), "{body}");
        }
        let body = r#"{"succeeded":"true"}"#;
        assert!(TxnResponse::read_plain(body.as_bytes()).is_none());
        assert!(agrees::<TxnResponse>(body));
    }

    #[test]
    fn agrees_with_serde_on_every_prefix_of_a_range() {
        for end in 0..=RANGE.len() {
            let body = &RANGE[..end];
            assert!(agrees::<RangeResponse>(body), "{body}");
            assert!(agrees::<HeaderOnly>(body), "{body}");
            assert!(agrees::<TxnResponse>(body), "{body}");
        }
    }
}
