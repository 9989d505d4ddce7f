//! The fast path of decoding a `GET /v1/kv/...` reply, the one body kvstore
//! reads often and in bulk (every `get_range` and every watch round).
//!
//! serde_json spends most of a listing on matching the six field names of
//! every entry and skipping the three kvstore does not use. This reads the
//! shape Consul writes (an array of flat objects whose strings have no
//! escapes) straight from the bytes. It accepts only what serde_json accepts
//! too, and yields the same entries; on anything else (an escape, a nested
//! value, a field twice, a malformed number) it gives up and [`decode`]'s
//! caller uses serde_json, which then also names what is wrong.

use super::wire::KvEntry;
use crate::base64_bytes;

/// The entries of `body`, or `None` when it is not in the plain shape.
pub(super) fn decode(body: &[u8]) -> Option<Vec<KvEntry>> {
    let mut reader = Reader { body, at: 0 };
    // One object per entry (a key with a brace in it only over-reserves).
    let mut entries = Vec::with_capacity(memchr::memchr_iter(b'{', body).count());
    reader.expect(b'[')?;
    if reader.peek()? == b']' {
        reader.at += 1;
    } else {
        loop {
            entries.push(reader.entry()?);
            match reader.next_byte()? {
                b',' => {}
                b']' => break,
                _ => return None,
            }
        }
    }
    reader.skip_whitespace();
    (reader.at == body.len()).then_some(entries)
}

/// The index of the first byte of `text` that ends a plain JSON string: a
/// quote, a backslash or a control character. Eight bytes at a time (the
/// classic "has a zero byte" trick); the first flagged byte is exact, as a
/// false flag can only follow a true one.
fn plain_string_end(text: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_bytes = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let mut chunks = text.chunks_exact(8);
    for (index, chunk) in chunks.by_ref().enumerate() {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(chunk);
        let word = u64::from_le_bytes(bytes);
        let flags = zero_bytes(word ^ (ONES * u64::from(b'"')))
            | zero_bytes(word ^ (ONES * u64::from(b'\\')))
            | (word.wrapping_sub(ONES * 0x20) & !word & HIGHS);
        if flags != 0 {
            return Some(index * 8 + flags.trailing_zeros() as usize / 8);
        }
    }
    let tail = chunks.remainder();
    tail.iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|at| text.len() - tail.len() + at)
}

/// The fields of an entry, in the order Consul writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    LockIndex,
    Key,
    Flags,
    Value,
    Session,
    CreateIndex,
    ModifyIndex,
}

impl Field {
    const ORDER: [Field; 7] = [
        Field::LockIndex,
        Field::Key,
        Field::Flags,
        Field::Value,
        Field::Session,
        Field::CreateIndex,
        Field::ModifyIndex,
    ];

    /// The name as written: quoted, then the colon.
    fn quoted(self) -> &'static [u8] {
        match self {
            Field::LockIndex => b"\"LockIndex\":",
            Field::Key => b"\"Key\":",
            Field::Flags => b"\"Flags\":",
            Field::Value => b"\"Value\":",
            Field::Session => b"\"Session\":",
            Field::CreateIndex => b"\"CreateIndex\":",
            Field::ModifyIndex => b"\"ModifyIndex\":",
        }
    }

    fn named(name: &[u8]) -> Option<Field> {
        Field::ORDER
            .into_iter()
            .find(|field| field.quoted()[1..field.quoted().len() - 2] == *name)
    }
}

struct Reader<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.body.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.body.get(self.at).copied()
    }

    fn next_byte(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next_byte()? == byte).then_some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.skip_whitespace();
        let rest = self.body.get(self.at..)?;
        rest.starts_with(word).then(|| self.at += word.len())
    }

    /// The bytes of a string without escapes or control characters (not yet
    /// checked to be UTF-8).
    fn plain_bytes(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let rest = self.body.get(self.at..)?;
        let end = plain_string_end(rest)?;
        if rest[end] != b'"' {
            return None;
        }
        self.at += end + 1;
        Some(&rest[..end])
    }

    /// A string without escapes or control characters, as valid UTF-8.
    fn plain_string(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.plain_bytes()?).ok()
    }

    /// An unsigned integer as JSON writes it (no sign, fraction, exponent or
    /// leading zero) that fits a `u64`.
    fn integer(&mut self) -> Option<u64> {
        self.skip_whitespace();
        let digits = self.body.get(self.at..)?;
        let mut value: u64 = 0;
        let mut len = 0;
        while let Some(&digit @ b'0'..=b'9') = digits.get(len) {
            value = value
                .checked_mul(10)?
                .checked_add(u64::from(digit - b'0'))?;
            len += 1;
        }
        if len == 0 || (len > 1 && digits[0] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = digits.get(len) {
            return None;
        }
        self.at += len;
        Some(value)
    }

    /// A string or `null`.
    fn optional_string(&mut self) -> Option<Option<&'a str>> {
        self.optional_bytes()?
            .map(|bytes| std::str::from_utf8(bytes).ok())
            .map_or(Some(None), |text| text.map(Some))
    }

    /// The bytes of a string (not checked to be UTF-8), or `null`.
    fn optional_bytes(&mut self) -> Option<Option<&'a [u8]>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            Some(None)
        } else {
            self.plain_bytes().map(Some)
        }
    }

    /// A field kvstore does not use: a scalar only.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.plain_string().map(drop),
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            _ => self.integer().map(drop),
        }
    }

    /// The next field's name and colon: the field Consul writes after
    /// field number `next` (or the one after that, as `Session` is often
    /// absent) is matched whole, anything else is read and looked up.
    /// `Err` holds a name that is not one of Consul's.
    fn field_name(&mut self, next: usize) -> Option<Result<Field, &'a [u8]>> {
        self.skip_whitespace();
        let rest = self.body.get(self.at..)?;
        for &field in Field::ORDER.get(next..).unwrap_or_default().iter().take(2) {
            if rest.starts_with(field.quoted()) {
                self.at += field.quoted().len();
                return Some(Ok(field));
            }
        }
        let name = self.plain_bytes()?;
        self.expect(b':')?;
        Some(Field::named(name).ok_or(name))
    }

    fn entry(&mut self) -> Option<KvEntry> {
        self.expect(b'{')?;
        let (mut key, mut value, mut modify_index, mut session) = (None, None, None, None);
        if self.peek()? != b'}' {
            let mut next = 0;
            loop {
                let name = self.field_name(next)?;
                if let Ok(field) = name {
                    next = field as usize + 1;
                }
                // A field twice is an error to serde: leave it to serde.
                match name {
                    Ok(Field::Key) if key.is_none() => key = Some(self.plain_string()?.to_owned()),
                    Ok(Field::Value) if value.is_none() => {
                        // Base64 is ASCII: decoding it checks what UTF-8 would.
                        value = Some(match self.optional_bytes()? {
                            None => None,
                            Some(text) => Some(base64_bytes::decode(text).ok()?),
                        });
                    }
                    Ok(Field::ModifyIndex) if modify_index.is_none() => {
                        modify_index = Some(self.integer()?)
                    }
                    Ok(Field::Session) if session.is_none() => {
                        session = Some(self.optional_string()?.map(str::to_owned));
                    }
                    Ok(Field::Key | Field::Value | Field::ModifyIndex | Field::Session) => {
                        return None;
                    }
                    Ok(Field::LockIndex | Field::Flags | Field::CreateIndex) => {
                        self.skip_value()?
                    }
                    // serde_json checks every name to be UTF-8.
                    Err(other) => {
                        std::str::from_utf8(other).ok()?;
                        self.skip_value()?;
                    }
                }
                match self.next_byte()? {
                    b',' => {}
                    b'}' => break,
                    _ => return None,
                }
            }
        } else {
            self.at += 1;
        }
        Some(KvEntry {
            key: key?,
            value: value.flatten(),
            modify_index: modify_index?,
            session: session.flatten(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde(body: &str) -> Option<Vec<KvEntry>> {
        serde_json::from_str(body).ok()
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
        assert_eq!(entries[0].value.as_deref(), Some(&b"hello"[..]));
        assert_eq!(entries[1].session.as_deref(), Some("5f0c"));
    }

    #[test]
    fn finds_the_first_byte_that_ends_a_plain_string() {
        let naive = |text: &[u8]| {
            text.iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        };
        let mut text = b"abcdefghijklmnopqrstuvwxyz0123456789\xc3\xa9\xff".to_vec();
        assert_eq!(plain_string_end(&text), None);
        for at in 0..text.len() {
            for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                let saved = text[at];
                text[at] = special;
                // A second special byte later must not move the answer.
                let last = text.len() - 1;
                let saved_last = text[last];
                text[last] = b'"';
                assert_eq!(plain_string_end(&text), naive(&text), "{at} {special}");
                assert_eq!(plain_string_end(&text[at..]), Some(0));
                text[last] = saved_last;
                text[at] = saved;
            }
        }
        for byte in 0..=255u8 {
            let text = [b'a', b'b', b'c', byte, b'd', b'e', b'f', b'g', b'h', byte];
            assert_eq!(plain_string_end(&text), naive(&text), "{byte}");
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
