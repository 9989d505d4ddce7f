//! A reader of the plain JSON servers write: objects, arrays and scalars
//! whose strings have no escapes. Every step is either what serde_json
//! would read too or `None`, after which the caller hands the whole text
//! to serde_json (which then also names what is wrong). The fast paths of
//! Consul's listings and etcd's range replies are built on it.

use super::compact::CompactReader;

/// The fields of an object a server writes in one order.
pub(crate) trait FieldNames: Copy + 'static {
    /// Every field, in the order the server writes them.
    const ORDER: &'static [Self];

    /// The field's name as written: quoted, then the colon (best a `match`
    /// of literals).
    fn quoted(self) -> &'static [u8];
}

/// Declares enums of the fields a server writes in an object, each in the
/// order the server writes them, with their [`FieldNames`]:
/// `Field { Key = "Key", ModifyIndex = "ModifyIndex" }`.
macro_rules! field_names {
    ($($(#[$doc:meta])* $name:ident { $($field:ident = $json:literal),+ $(,)? })+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum $name {
            $($field),+
        }

        impl $crate::json::plain::FieldNames for $name {
            const ORDER: &'static [Self] = &[$($name::$field),+];

            fn quoted(self) -> &'static [u8] {
                match self {
                    $($name::$field => concat!("\"", $json, "\":").as_bytes()),+
                }
            }
        }
    )+};
}
pub(crate) use field_names;

/// A position in a JSON text. Every method skips whitespace first.
#[derive(Debug, Clone)]
pub(crate) struct PlainReader<'a> {
    body: &'a [u8],
    /// `body`, when it is known to be UTF-8: its strings need no check.
    text: Option<&'a str>,
    at: usize,
}

impl<'a> PlainReader<'a> {
    /// A reader at the start of `body`.
    pub(crate) fn new(body: &'a [u8]) -> Self {
        PlainReader {
            body,
            text: None,
            at: 0,
        }
    }

    /// A reader at the start of `text`. Checking a whole reply to be
    /// UTF-8 at once costs a few instructions per 16 bytes of ASCII; each
    /// string checked on its own costs about a hundred (callgrind, on a
    /// Consul listing's keys).
    pub(crate) fn from_text(text: &'a str) -> Self {
        PlainReader {
            body: text.as_bytes(),
            text: Some(text),
            at: 0,
        }
    }

    /// True when only whitespace is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.skip_whitespace();
        self.at == self.body.len()
    }

    /// Consumes `word` when the text goes on with exactly it (after
    /// whitespace); false, consuming nothing, otherwise.
    #[inline(always)]
    pub(crate) fn consume(&mut self, word: &[u8]) -> bool {
        self.literal(word).is_some()
    }

    /// Moves past spaces, tabs and line ends.
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

    /// The next byte after whitespace, consumed.
    fn next_byte(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    /// Consumes `byte`, the next one after whitespace, or fails.
    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next_byte()? == byte).then_some(())
    }

    /// Consumes `word`, next after whitespace, or fails.
    #[inline(always)]
    pub(crate) fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.skip_whitespace();
        let rest = self.body.get(self.at..)?;
        starts_with_name(rest, word).then(|| self.at += word.len())
    }

    /// The bytes of a string without escapes or control characters (not yet
    /// checked to be UTF-8).
    pub(crate) fn plain_bytes(&mut self) -> Option<&'a [u8]> {
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
    pub(crate) fn plain_string(&mut self) -> Option<&'a str> {
        let bytes = self.plain_bytes()?;
        // The closing quote was the last byte read.
        let start = self.at - 1 - bytes.len();
        utf8_at(self.text, bytes, start)
    }

    /// An unsigned integer as JSON writes it (no sign, fraction, exponent or
    /// leading zero) that fits a `u64`.
    pub(crate) fn integer(&mut self) -> Option<u64> {
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
    pub(crate) fn optional_string(&mut self) -> Option<Option<&'a str>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            Some(None)
        } else {
            self.plain_string().map(Some)
        }
    }

    /// The bytes of a string (not checked to be UTF-8), or `null`.
    pub(crate) fn optional_bytes(&mut self) -> Option<Option<&'a [u8]>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            Some(None)
        } else {
            self.plain_bytes().map(Some)
        }
    }

    /// A field kvmesh does not use: a scalar only.
    pub(crate) fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.plain_bytes().filter(|b| is_utf8(b)).map(drop),
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            _ => self.integer().map(drop),
        }
    }

    /// An int64 as the etcd gateway writes it: a quoted or bare unsigned
    /// integer (signs, leading zeros and the like are left to serde).
    pub(crate) fn int64(&mut self) -> Option<i64> {
        let quoted = self.peek()? == b'"';
        if quoted {
            self.at += 1;
        }
        let value = i64::try_from(self.integer()?).ok()?;
        if quoted && self.body.get(self.at) != Some(&b'"') {
            return None;
        }
        self.at += usize::from(quoted);
        Some(value)
    }

    /// Any value, nested or not, as long as its strings are plain and it
    /// is at most `depth` levels deep.
    pub(crate) fn skip_any(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' if depth > 0 => self.object(|reader, name| {
                is_utf8(name).then_some(())?;
                reader.skip_any(depth - 1)
            }),
            b'[' if depth > 0 => self.array(|reader| reader.skip_any(depth - 1)),
            b'{' | b'[' => None,
            _ => self.skip_value(),
        }
    }

    /// An object: `field` reads the value of each field it is given the
    /// name of (not checked to be UTF-8).
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let name = self.plain_bytes()?;
            self.expect(b':')?;
            field(self, name)?;
            match self.next_byte()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// An object whose fields usually come in `F::ORDER`: the name expected
    /// next, or the one after it (for a field often left out), is matched
    /// whole with its quotes and colon; any other is read and looked up.
    /// `field` gets each field, or its name when it is not one of `F`.
    #[inline]
    pub(crate) fn object_in_order<F: FieldNames>(
        &mut self,
        mut field: impl FnMut(&mut Self, Result<F, &'a [u8]>) -> Option<()>,
    ) -> Option<()> {
        self.expect(b'{')?;
        if self.consume(b"}") {
            return Some(());
        }
        let mut next = 0;
        loop {
            let name = self.name_in_order::<F>(next)?;
            if let Ok((index, _)) = name {
                next = index + 1;
            }
            field(self, name.map(|(_, found)| found))?;
            match self.next_byte()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// A field's name and colon, with the field's place in `F::ORDER`.
    #[inline]
    fn name_in_order<F: FieldNames>(
        &mut self,
        next: usize,
    ) -> Option<Result<(usize, F), &'a [u8]>> {
        let rest = self.rest();
        let expected = F::ORDER.get(next..).unwrap_or_default();
        for (index, &candidate) in (next..).zip(expected).take(2) {
            if starts_with_name(rest, candidate.quoted()) {
                self.at += candidate.quoted().len();
                return Some(Ok((index, candidate)));
            }
        }
        let name = self.plain_bytes()?;
        self.expect(b':')?;
        let named = |field: &F| {
            let quoted = field.quoted();
            quoted.get(1..quoted.len().saturating_sub(2)) == Some(name)
        };
        Some(
            F::ORDER
                .iter()
                .position(named)
                .map(|index| (index, F::ORDER[index]))
                .ok_or(name),
        )
    }

    /// An array: `element` reads each element.
    pub(crate) fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.expect(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            element(self)?;
            match self.next_byte()? {
                b',' => {}
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// Reads what comes next with a [`CompactReader`] (no whitespace
    /// anywhere); moves past it only when `read` succeeds.
    #[inline(always)]
    pub(crate) fn compact<T>(
        &mut self,
        read: impl FnOnce(&mut CompactReader<'a>) -> Option<T>,
    ) -> Option<T> {
        let mut compact = CompactReader::new(self.body, self.text, self.at);
        let value = read(&mut compact)?;
        self.at = compact.position();
        Some(value)
    }

    /// What is left of the text, from the next byte that is not whitespace.
    fn rest(&mut self) -> &'a [u8] {
        self.skip_whitespace();
        &self.body[self.at.min(self.body.len())..]
    }
}

/// The index of the first byte of `text` that ends a plain JSON string: a
/// quote, a backslash or a control character. Eight bytes at a time (the
/// classic "has a zero byte" trick); the first flagged byte is exact, as a
/// false flag can only follow a true one.
pub(crate) fn plain_string_end(text: &[u8]) -> Option<usize> {
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

/// `text.starts_with(name)` for a short word (a quoted name, a literal),
/// compared eight bytes at a time (the last word overlapping the one
/// before) rather than by a call to `memcmp`, which cost a listing seven
/// calls an entry.
#[inline(always)]
pub(crate) fn starts_with_name(text: &[u8], name: &[u8]) -> bool {
    let Some(head) = text.get(..name.len()) else {
        return false;
    };
    let word = |bytes: &[u8], at: usize| {
        let mut word = [0; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_ne_bytes(word)
    };
    let len = name.len();
    if len < 8 {
        return head == name;
    }
    let mut at = 0;
    while at + 8 < len {
        if word(head, at) != word(name, at) {
            return false;
        }
        at += 8;
    }
    word(head, len - 8) == word(name, len - 8)
}

/// `bytes`, found at `start` in a text, as a `str`: cut from the `text`
/// when it is known to be UTF-8 (the quotes around a string are on char
/// boundaries), else checked.
#[inline(always)]
pub(crate) fn utf8_at<'a>(text: Option<&'a str>, bytes: &'a [u8], start: usize) -> Option<&'a str> {
    match text {
        Some(text) => text.get(start..start + bytes.len()),
        None => std::str::from_utf8(bytes).ok(),
    }
}

/// True when `bytes` are UTF-8, with a quick answer for ASCII (most of
/// what servers send), for which `str::from_utf8` costs a call and set-up.
pub(crate) fn is_utf8(bytes: &[u8]) -> bool {
    bytes.is_ascii() || std::str::from_utf8(bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn compares_names_as_starts_with_does() {
        let text = b"\"ModifyIndex\":12,\"create_revision\":\"3\"";
        for start in 0..text.len() {
            for len in 0..=text.len() - start {
                let name = &text[start..start + len];
                for from in 0..text.len() {
                    let rest = &text[from..];
                    assert_eq!(
                        starts_with_name(rest, name),
                        rest.starts_with(name),
                        "{from} {start} {len}"
                    );
                }
            }
        }
    }

    field_names! {
        Letter { A = "a", B = "b", C = "c" }
    }

    #[test]
    fn objects_in_order_find_names_in_any_order() {
        let body = br#"{"a":1,"c":2,"b":3,"d":4, "a" : 5}"#;
        let mut seen = Vec::new();
        let mut reader = PlainReader::new(body);
        reader
            .object_in_order::<Letter>(|reader, name| {
                seen.push(name.map_err(<[u8]>::to_vec));
                reader.skip_value()
            })
            .unwrap();
        assert!(reader.at_end());
        use Letter::*;
        assert_eq!(seen, [Ok(A), Ok(C), Ok(B), Err(b"d".to_vec()), Ok(A)]);
    }

    #[test]
    fn reads_nested_values_and_etcd_numbers() {
        let mut reader = PlainReader::new(br#" {"a": [1, {"b": "x"}, null], "n": "42", "m": 7} "#);
        let (mut n, mut m) = (None, None);
        reader
            .object(|reader, name| match name {
                b"n" => reader.int64().map(|v| n = Some(v)),
                b"m" => reader.int64().map(|v| m = Some(v)),
                _ => reader.skip_any(2),
            })
            .unwrap();
        assert!(reader.at_end());
        assert_eq!((n, m), (Some(42), Some(7)));
        for bad in [
            &br#""-1""#[..],
            br#""01""#,
            br#""1"#,
            br#"1.5"#,
            br#""9223372036854775808""#,
        ] {
            let mut reader = PlainReader::new(bad);
            let value = reader.int64();
            assert!(
                value.is_none() || !reader.at_end(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(PlainReader::new(b"[[[1]]]").skip_any(2).is_none());
        assert!(PlainReader::new(b"[[[1]]]").skip_any(3).is_some());
    }
}
