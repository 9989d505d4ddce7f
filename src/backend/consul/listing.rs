//! The fast path of decoding a `GET /v1/kv/...` reply, the one body kvmesh
//! reads often and in bulk (every `get_range` and every watch round).
//!
//! serde_json spends most of a listing on matching the six field names of
//! every entry and skipping the three kvmesh does not use. This reads the
//! shape Consul writes (an array of flat objects whose strings have no
//! escapes) straight from the bytes. It accepts only what serde_json accepts
//! too, and yields the same entries; on anything else (an escape, a nested
//! value, a field twice, a malformed number) it gives up and [`decode`]'s
//! caller uses serde_json, which then also names what is wrong.

use bytes::Bytes;

use super::entries::Entries;
use crate::KvPair;
use crate::base64_bytes::{self, ValueBatch};
use crate::json::compact::CompactReader;
use crate::json::plain::{PlainReader, field_names, is_utf8};

/// The entries of `body`, or `None` when it is not in the plain shape.
pub(super) fn decode(body: &[u8]) -> Option<Entries> {
    // JSON is UTF-8 (RFC 8259): checked once, keys need no check of their own.
    let mut reader = PlainReader::from_text(std::str::from_utf8(body).ok()?);
    // One object per entry (a key with a brace in it only over-reserves).
    let mut pairs = Vec::with_capacity(memchr::memchr_iter(b'{', body).count());
    let mut sessions = Vec::new();
    // The layout of an entry is tried first on the next one.
    let mut indented = false;
    // Several values are decoded together once the reply is read; a few,
    // one by one as they come.
    let mut batch = ValueBatch::for_entries(pairs.capacity());
    reader.array(|reader| {
        let mut entry = entry(reader, &mut indented)?;
        match &mut batch {
            Some(batch) => batch.push(entry.value),
            None => {
                if let Some(text) = entry.value {
                    entry.pair.value = base64_bytes::decode(text).ok()?;
                }
            }
        }
        if let Some(session) = entry.session {
            sessions.push((pairs.len(), session.to_owned()));
        }
        pairs.push(entry.pair);
        Some(())
    })?;
    reader.at_end().then_some(())?;
    if let Some(batch) = batch {
        let mut slots = pairs.iter_mut();
        batch
            .decode(|value| {
                if let (Some(pair), Some(value)) = (slots.next(), value) {
                    pair.value = value;
                }
            })
            .ok()?;
    }
    Some(Entries { pairs, sessions })
}

/// An entry read, its value's base64 text not yet decoded.
struct PendingEntry<'a> {
    /// The entry's pair, with an empty value for now.
    pair: KvPair,
    value: Option<&'a [u8]>,
    session: Option<&'a str>,
}

/// The entry for `key` and the rest, its value not yet decoded.
fn pending<'a>(
    key: &str,
    value: Option<&'a [u8]>,
    modify_index: u64,
    session: Option<&'a str>,
) -> PendingEntry<'a> {
    let pair = KvPair {
        key: key.to_owned(),
        value: Bytes::new(),
        version: modify_index,
    };
    PendingEntry {
        pair,
        value,
        session,
    }
}

/// How an indented entry is laid out (`-dev` agents, and `?pretty`),
/// field by field, up to each value. Whitespace before each part is
/// skipped; within a part it must be exactly this.
struct Layout {
    lock_index: &'static [u8],
    key: &'static [u8],
    flags: &'static [u8],
    value: &'static [u8],
    session: &'static [u8],
    create_index: &'static [u8],
    modify_index: &'static [u8],
}

/// An entry of an indented listing, one level deep.
const INDENTED: Layout = Layout {
    lock_index: b"{\n        \"LockIndex\":",
    key: b",\n        \"Key\":",
    flags: b",\n        \"Flags\":",
    value: b",\n        \"Value\":",
    session: b",\n        \"Session\":",
    create_index: b",\n        \"CreateIndex\":",
    modify_index: b",\n        \"ModifyIndex\":",
};

field_names! {
    /// The fields of an entry, in the order Consul writes them.
    Field {
        LockIndex = "LockIndex",
        Key = "Key",
        Flags = "Flags",
        Value = "Value",
        Session = "Session",
        CreateIndex = "CreateIndex",
        ModifyIndex = "ModifyIndex",
    }
}

/// One entry: as Consul writes it if it can (indented when `indented`,
/// else compactly; then the other way, which `indented` then follows),
/// field by field if not.
fn entry<'a>(reader: &mut PlainReader<'a>, indented: &mut bool) -> Option<PendingEntry<'a>> {
    if !*indented {
        if let Some(entry) = reader.compact(compact_entry) {
            return Some(entry);
        }
    }
    let mut attempt = reader.clone();
    if let Some(entry) = indented_entry(&mut attempt) {
        *reader = attempt;
        *indented = true;
        return Some(entry);
    }
    if *indented {
        if let Some(entry) = reader.compact(compact_entry) {
            *indented = false;
            return Some(entry);
        }
    }
    entry_by_fields(reader)
}

/// An entry exactly as a Consul server writes it: no whitespace, every
/// field in its place, `Session` only while a lock holds the key. Each
/// step is a few word compares: a fifth of the cost of reading the entry
/// with whitespace skipped before every part (callgrind).
#[inline(always)]
fn compact_entry<'a>(reader: &mut CompactReader<'a>) -> Option<PendingEntry<'a>> {
    reader.tag(b"{\"LockIndex\":")?;
    reader.skip_integer()?;
    reader.tag(b",\"Key\":\"")?;
    let key = reader.plain_string()?;
    reader.tag(b",\"Flags\":")?;
    reader.skip_integer()?;
    reader.tag(b",\"Value\":")?;
    // Base64 is ASCII: decoding it checks what UTF-8 and JSON would.
    let value = match reader.consume(b"null") {
        true => None,
        false => {
            reader.tag(b"\"")?;
            Some(reader.base64_text()?)
        }
    };
    let session = match reader.consume(b",\"Session\":") {
        false => None,
        true if reader.consume(b"null") => None,
        true => {
            reader.tag(b"\"")?;
            Some(reader.plain_string()?)
        }
    };
    reader.tag(b",\"CreateIndex\":")?;
    reader.skip_integer()?;
    reader.tag(b",\"ModifyIndex\":")?;
    let modify_index = reader.integer()?;
    reader.tag(b"}")?;
    Some(pending(key, value, modify_index, session))
}

/// An entry exactly as an indented listing lays it out: every field in
/// its place, whitespace skipped before each part.
#[inline(always)]
fn indented_entry<'a>(reader: &mut PlainReader<'a>) -> Option<PendingEntry<'a>> {
    let layout = &INDENTED;
    reader.literal(layout.lock_index)?;
    reader.integer()?;
    reader.literal(layout.key)?;
    let key = reader.plain_string()?;
    reader.literal(layout.flags)?;
    reader.integer()?;
    reader.literal(layout.value)?;
    let value = reader.optional_bytes()?;
    let session = match reader.consume(layout.session) {
        true => reader.optional_string()?,
        false => None,
    };
    reader.literal(layout.create_index)?;
    reader.integer()?;
    reader.literal(layout.modify_index)?;
    let modify_index = reader.integer()?;
    reader.literal(b"}")?;
    Some(pending(key, value, modify_index, session))
}

/// An entry read field by field, in any order.
fn entry_by_fields<'a>(reader: &mut PlainReader<'a>) -> Option<PendingEntry<'a>> {
    let (mut key, mut value, mut modify_index, mut session) = (None, None, None, None);
    reader.object_in_order::<Field>(|reader, name| {
        // A field twice is an error to serde: leave it to serde.
        match name {
            Ok(Field::Key) if key.is_none() => key = Some(reader.plain_string()?),
            // Base64 is ASCII: decoding it checks what UTF-8 would.
            Ok(Field::Value) if value.is_none() => value = Some(reader.optional_bytes()?),
            Ok(Field::ModifyIndex) if modify_index.is_none() => {
                modify_index = Some(reader.integer()?)
            }
            Ok(Field::Session) if session.is_none() => {
                session = Some(reader.optional_string()?);
            }
            Ok(Field::Key | Field::Value | Field::ModifyIndex | Field::Session) => return None,
            Ok(Field::LockIndex | Field::Flags | Field::CreateIndex) => reader.skip_value()?,
            // serde_json checks every name to be UTF-8.
            Err(other) => {
                is_utf8(other).then_some(())?;
                reader.skip_value()?;
            }
        }
        Some(())
    })?;
    Some(pending(
        key?,
        value.flatten(),
        modify_index?,
        session.flatten(),
    ))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::super::wire::KvEntry;
    use super::*;

    fn serde(body: &str) -> Option<Entries> {
        serde_json::from_str::<Vec<KvEntry>>(body)
            .ok()
            .map(Entries::from)
    }

    /// The fast path either agrees with serde_json or gives up.
    fn agrees(body: &str) -> bool {
        match decode(body.as_bytes()) {
            Some(fast) => serde(body) == Some(fast),
            None => true,
        }
    }

    #[test]
    fn reads_compact_and_pretty_listings_as_serde_does() {
        let compact = r#"[{"LockIndex":0,"Key":"a/1","Flags":0,"Value":"aGVsbG8=","CreateIndex":19,"ModifyIndex":21},{"LockIndex":1,"Key":"a/2","Flags":0,"Value":null,"Session":"5f0c","CreateIndex":20,"ModifyIndex":20}]"#;
        let pretty = "[\n    {\n        \"LockIndex\": 0,\n        \"Key\": \"a/1\",\n        \"Flags\": 0,\n        \"Value\": \"aGVsbG8=\",\n        \"CreateIndex\": 19,\n        \"ModifyIndex\": 21\n    }\n]\n";
        for body in [compact, pretty, "[]", " [ ] \n"] {
            let fast = decode(body.as_bytes()).expect("the plain shape");
            assert_eq!(Some(fast), serde(body), "{body}");
        }
        let entries = decode(compact.as_bytes()).unwrap_or_default();
        assert_eq!(entries.pairs[0].value, &b"hello"[..]);
        assert_eq!(entries.sessions, [(1, "5f0c".to_owned())]);
    }

    #[test]
    fn reads_a_long_listing_as_serde_does() {
        // Values of every length around the shared buffers' limits, a
        // non-canonical one among them, null ones, in a few thousand
        // entries: several buffers, each value its own bytes.
        let mut body = String::from("[");
        for i in 0..3000usize {
            let len = [0, 1, 2, 3, 13, 511, 512, 513, 4096][i % 9] + i % 3;
            let value = match i % 11 {
                0 => "null".to_owned(),
                // Non-zero trailing bits: only the engine's decoder decides.
                5 => "\"aGk=\"".replace("aGk=", "aGl="),
                _ => format!("\"{}\"", STANDARD.encode(vec![i as u8; len])),
            };
            if i > 0 {
                body.push(',');
            }
            body.push_str(&format!(
                r#"{{"LockIndex":0,"Key":"a/{i:05}","Flags":0,"Value":{value},"CreateIndex":1,"ModifyIndex":{}}}"#,
                i + 1
            ));
        }
        body.push(']');
        // serde_json rejects it, so the fast path must give up.
        assert_eq!((decode(body.as_bytes()), serde(&body)), (None, None));
        let body = body.replace("\"aGl=\"", "\"aGk=\"");
        let fast = decode(body.as_bytes()).expect("the plain shape");
        assert_eq!(Some(&fast), serde(&body).as_ref());
        assert_eq!(fast.pairs[1].value, &[1u8, 1][..]);
    }

    #[test]
    fn reads_each_layout_consul_writes_without_looking_at_names() {
        let compact = r#"{"LockIndex":1,"Key":"a/2","Flags":0,"Value":null,"Session":"5f0c","CreateIndex":20,"ModifyIndex":20}"#;
        let indented = "{\n        \"LockIndex\": 1,\n        \"Key\": \"a/2\",\n        \"Flags\": 0,\n        \"Value\": null,\n        \"Session\": \"5f0c\",\n        \"CreateIndex\": 20,\n        \"ModifyIndex\": 20\n    }";
        let readers: [fn(&mut PlainReader<'static>) -> Option<PendingEntry<'static>>; 2] = [
            |reader| reader.compact(compact_entry),
            |reader| indented_entry(reader),
        ];
        for (read, (text, other)) in readers
            .into_iter()
            .zip([(compact, indented), (indented, compact)])
        {
            let mut reader = PlainReader::new(text.as_bytes());
            let entry = read(&mut reader).expect(text);
            assert!(reader.at_end(), "{text}");
            assert_eq!(entry.value, None);
            assert_eq!((entry.pair.key.as_str(), entry.pair.version), ("a/2", 20));
            assert_eq!(entry.session, Some("5f0c"));
            assert!(read(&mut PlainReader::new(other.as_bytes())).is_none());
        }
    }

    #[test]
    fn reads_what_a_compact_entry_cannot_hold_as_serde_does() {
        // Spaces, escapes in values and keys, huge skipped numbers: each
        // either read another way or left to serde, never misread.
        let entry = |lock: &str, key: &str, value: &str, index: &str| {
            format!(
                r#"{{"LockIndex":{lock},"Key":{key},"Flags":0,"Value":{value},"CreateIndex":1,"ModifyIndex":{index}}}"#
            )
        };
        for one in [
            entry("0", r#""a""#, r#""aGk=""#, "2"),
            entry("123456789012345678901234567890", r#""a""#, r#""aGk=""#, "2"),
            entry("0", r#""a""#, r#""aGk\/""#, "2"),
            entry("0", r#""a""#, r#""\u0061Gk=""#, "2"),
            entry("0", r#""a""#, r#""aGk\"""#, "2"),
            entry("0", r#""a\"b""#, r#""aGk=""#, "2"),
            entry("0", r#""a""#, r#"  "aGk=" "#, "2"),
            entry("0", r#""a""#, r#""aGk=""#, "18446744073709551615"),
            entry("0", r#""a""#, r#""aGk=""#, "18446744073709551616"),
            entry("0", r#""a""#, r#""aGk=""#, "2.0"),
            entry("1e3", r#""a""#, r#""aGk=""#, "2"),
            entry("00", r#""a""#, r#""aGk=""#, "2"),
            entry("0", "\"\u{e9}\"", r#""aGk=""#, "2"),
        ] {
            for body in [
                format!("[{one}]"),
                format!("[{one},{one},{one},{one},{one}]"),
            ] {
                assert!(agrees(&body), "{body}");
            }
        }
    }

    #[test]
    fn gives_up_on_anything_serde_must_judge() {
        for body in [
            r#"[{"Key":"a\u003cb","ModifyIndex":1}]"#,
            r#"[{"Key":"a","ModifyIndex":01}]"#,
            r#"[{"Key":"a","ModifyIndex":1.0}]"#,
            r#"[{"Key":"a","ModifyIndex":-1}]"#,
            r#"[{"Key":"a","ModifyIndex":18446744073709551616}]"#,
            r#"[{"Key":"a","Key":"b","ModifyIndex":1}]"#,
            r#"[{"Key":"a","ModifyIndex":1,"Flags":{"x":1}}]"#,
            r#"[{"Key":"a","Value":"not base64!","ModifyIndex":1}]"#,
            r#"[{"Key":"a"}]"#,
            r#"[{"Key":null,"ModifyIndex":1}]"#,
            "[{\"Key\":\"a\tb\",\"ModifyIndex\":1}]",
            r#"[{"Key":"a","ModifyIndex":1}] x"#,
            r#"[{"Key":"a","ModifyIndex":1},]"#,
            r#"[{"Key":"a","ModifyIndex":1}"#,
            "null",
            "",
        ] {
            assert!(decode(body.as_bytes()).is_none(), "{body}");
            assert!(agrees(body), "{body}");
        }
    }

    #[test]
    fn agrees_with_serde_on_every_prefix_of_a_listing() {
        let body = r#"[{"LockIndex":0,"Key":"a/1","Flags":0,"Value":"aGVsbG8=","Session":null,"CreateIndex":19,"ModifyIndex":21},{"Key":"b","ModifyIndex":3,"Flags":true}]"#;
        for end in 0..=body.len() {
            assert!(agrees(&body[..end]), "{}", &body[..end]);
        }
    }
}
