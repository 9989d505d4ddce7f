//! A reader of JSON written with no whitespace at all, the way servers in
//! production write their replies. It skips nothing, so each step is a few
//! word compares; any whitespace, escape or unexpected byte makes a step
//! fail, and the caller falls back to a [`PlainReader`](super::plain::PlainReader)
//! (and from there to serde_json). Every step accepts only what serde_json
//! accepts too.

use super::plain::{plain_string_end, starts_with_name, utf8_at};

/// A position in a compact JSON text: what is left of it. Each step
/// moves the slice on, so a step's bounds checks are mostly the compare
/// it does anyway.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompactReader<'a> {
    rest: &'a [u8],
    /// The whole text, when it is known to be UTF-8.
    text: Option<&'a str>,
    /// The length of the whole text.
    len: usize,
}

impl<'a> CompactReader<'a> {
    /// A reader at `at` in `body`, which `text` is when it is known to be
    /// UTF-8.
    pub(crate) fn new(body: &'a [u8], text: Option<&'a str>, at: usize) -> Self {
        CompactReader {
            rest: body.get(at..).unwrap_or_default(),
            text,
            len: body.len(),
        }
    }

    /// Where the reader is in the text.
    pub(crate) fn position(&self) -> usize {
        self.len - self.rest.len()
    }

    /// Consumes `word` (punctuation, a quoted name, a literal), which must
    /// come next, exactly.
    #[inline(always)]
    pub(crate) fn tag(&mut self, word: &[u8]) -> Option<()> {
        let (head, rest) = self.rest.split_at_checked(word.len())?;
        starts_with_name(head, word).then(|| self.rest = rest)
    }

    /// Consumes `word` when it comes next; false, consuming nothing, if not.
    #[inline(always)]
    pub(crate) fn consume(&mut self, word: &[u8]) -> bool {
        self.tag(word).is_some()
    }

    /// Moves past an unsigned integer as JSON writes it (no leading zero),
    /// of any length: a field nobody reads, which serde_json would skip
    /// whatever its size. A fraction or exponent is left for the next
    /// step to refuse.
    #[inline(always)]
    pub(crate) fn skip_integer(&mut self) -> Option<()> {
        let (_, rest) = self.digits()?;
        self.rest = rest;
        Some(())
    }

    /// An unsigned integer of at most 19 digits (so it fits a `u64`), as
    /// JSON writes it. A longer one is left to serde_json.
    #[inline(always)]
    pub(crate) fn integer(&mut self) -> Option<u64> {
        let (digits, rest) = self.digits().filter(|(digits, _)| digits.len() <= 19)?;
        self.rest = rest;
        Some(
            digits
                .iter()
                .fold(0, |value, &digit| value * 10 + u64::from(digit - b'0')),
        )
    }

    /// The digits that come next (at least one, and only one if the first
    /// is 0: JSON has no leading zeros), and what follows them.
    #[inline(always)]
    fn digits(&self) -> Option<(&'a [u8], &'a [u8])> {
        let len = self.rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (digits, rest) = self.rest.split_at_checked(len)?;
        match digits {
            [b'1'..=b'9', ..] | [b'0'] => Some((digits, rest)),
            _ => None,
        }
    }

    /// The bytes of a string whose opening quote is already consumed, up
    /// to its closing quote, consumed too: no escape and no control
    /// character in it (not yet checked to be UTF-8).
    #[inline(always)]
    pub(crate) fn plain_bytes(&mut self) -> Option<&'a [u8]> {
        let end = plain_string_end(self.rest)?;
        let (bytes, rest) = self.rest.split_at_checked(end)?;
        self.rest = rest.strip_prefix(b"\"")?;
        Some(bytes)
    }

    /// Like [`plain_bytes`](Self::plain_bytes), as valid UTF-8.
    #[inline(always)]
    pub(crate) fn plain_string(&mut self) -> Option<&'a str> {
        let start = self.position();
        let bytes = self.plain_bytes()?;
        utf8_at(self.text, bytes, start)
    }

    /// The text of a base64 string whose opening quote is already consumed,
    /// up to the next quote, consumed too. Only the quote is looked for:
    /// whoever decodes the text must refuse any byte outside base64's
    /// alphabet (a backslash, a control character), which then also
    /// covers everything a JSON string could hide.
    #[inline(always)]
    pub(crate) fn base64_text(&mut self) -> Option<&'a [u8]> {
        let end = quote_at(self.rest)?;
        let (text, rest) = self.rest.split_at_checked(end)?;
        self.rest = rest.get(1..)?;
        Some(text)
    }
}

/// The index of the first quote in `text`, eight bytes at a time.
fn quote_at(text: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    let mut chunks = text.chunks_exact(8);
    for (index, chunk) in chunks.by_ref().enumerate() {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(chunk);
        let word = u64::from_le_bytes(bytes) ^ QUOTES;
        // Flags the zero bytes: exact up to the first, all that counts.
        let flags = word.wrapping_sub(ONES) & !word & HIGHS;
        if flags != 0 {
            return Some(index * 8 + flags.trailing_zeros() as usize / 8);
        }
    }
    let tail = chunks.remainder();
    tail.iter()
        .position(|&b| b == b'"')
        .map(|at| text.len() - tail.len() + at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_quote() {
        let mut text = *b"abcdefghijklmnopqrstuvwxyz\"\x80\x00\\";
        for at in 0..26 {
            let saved = text[at];
            text[at] = b'"';
            assert_eq!(quote_at(&text), Some(at));
            assert_eq!(quote_at(&text[..at]), None);
            text[at] = saved;
        }
        for byte in 0..=255u8 {
            let text = [byte, b'x', byte, 1, 2, 3, 4, 5, 6, byte];
            let naive = text.iter().position(|&b| b == b'"');
            assert_eq!(quote_at(&text), naive, "{byte}");
        }
    }

    #[test]
    fn reads_integers_as_json_writes_them() {
        let read = |text: &[u8]| {
            let mut reader = CompactReader::new(text, None, 0);
            reader.integer().map(|value| (value, reader.position()))
        };
        assert_eq!(read(b"0,"), Some((0, 1)));
        assert_eq!(read(b"7}"), Some((7, 1)));
        assert_eq!(
            read(b"1234567890123456789"),
            Some((1234567890123456789, 19))
        );
        assert_eq!(
            read(b"9999999999999999999"),
            Some((9999999999999999999, 19))
        );
        for bad in [
            &b""[..],
            b"-1",
            b"01",
            b"00",
            b" 1",
            b"x",
            b"12345678901234567890",
        ] {
            assert_eq!(read(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        let skip = |text: &[u8]| {
            let mut reader = CompactReader::new(text, None, 0);
            reader.skip_integer().map(|()| reader.position())
        };
        assert_eq!(skip(b"123456789012345678901234567890,"), Some(30));
        assert_eq!(skip(b"0"), Some(1));
        assert_eq!(skip(b"01"), None);
        assert_eq!(skip(b"-1"), None);
    }

    #[test]
    fn reads_strings_up_to_their_quote() {
        let mut reader = CompactReader::new(br#"{"a":"bc","d":"e\"f"}"#, None, 0);
        reader.tag(br#"{"a":""#).unwrap();
        assert_eq!(reader.plain_bytes(), Some(&b"bc"[..]));
        reader.tag(br#","d":""#).unwrap();
        let mut escaped = reader;
        assert_eq!(escaped.plain_bytes(), None);
        assert_eq!(reader.base64_text(), Some(&b"e\\"[..]));
        assert!(!reader.consume(b"}"));
        assert!(reader.consume(b"f\"}"));
        assert_eq!(reader.position(), 21);
        assert_eq!(reader.base64_text(), None);
        assert_eq!(reader.tag(b"}"), None);
    }
}
