//! Base64 values from a reply, decoded into buffers of exactly their size.
//!
//! `base64`'s own `decode` reserves a rounded-up estimate, and a `Bytes`
//! made from a `Vec` whose capacity exceeds its length allocates a second,
//! shared header; a listing of 100 values paid 200 allocations for 100.
//!
//! The short values of a listing also cost the engine ~400 instructions
//! each (callgrind), mostly set-up around its wide loop. Canonical padded
//! base64, which is all Consul and etcd send, is decoded here by a table,
//! a quad at a time; anything else (a stray byte, misplaced padding,
//! non-zero trailing bits) goes to the engine, which decides and names
//! the error, so the result is always the engine's.

use base64::DecodeError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

/// Decodes padded standard base64 (what Consul and etcd send) into a `Bytes`
/// that owns exactly the decoded bytes.
pub(crate) fn decode(text: &[u8]) -> Result<Bytes, base64::DecodeError> {
    decode_vec(text).map(Bytes::from)
}

/// Decodes padded standard base64 into a `Vec` whose capacity is its length.
pub(crate) fn decode_vec(text: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    let Some((len, padding)) = canonical_len(text) else {
        // Not padded base64: let the engine name the error.
        return STANDARD.decode(text);
    };
    // Not `vec![0; n]`: that is a `calloc`, dearer than a `malloc` and a
    // short fill for the short values a listing holds (callgrind: 70
    // instructions a value).
    #[expect(
        clippy::slow_vector_initialization,
        reason = "measured: values are short"
    )]
    let mut decoded = Vec::with_capacity(len);
    decoded.resize(decoded.capacity(), 0);
    if decode_canonical(text, padding, &mut decoded) {
        return Ok(decoded);
    }
    match STANDARD.decode_slice(text, &mut decoded) {
        Ok(written) if written == decoded.len() => Ok(decoded),
        // Padding in the wrong place, say: the engine names the error.
        _ => STANDARD.decode(text),
    }
}

/// The base64 values of one reply, decoded together once it is read, into
/// shared buffers of exactly their size: a listing's short values cost two
/// allocations per [`ValueBatch::CHUNK`] bytes instead of one each (with
/// its `free`, ~300 instructions a value under glibc; callgrind). A reply
/// of fewer than [`ValueBatch::WORTH_IT`] entries decodes each value by
/// itself, as a batch would cost it more than it saves.
///
/// A value kept after its listing is dropped keeps its whole buffer alive:
/// at most `CHUNK` bytes of values (`Bytes::copy_from_slice` detaches it).
/// A value longer than [`ValueBatch::MAX_PACKED`], or the only one of its
/// run, gets a buffer of its own.
#[derive(Default)]
pub(crate) struct ValueBatch<'a> {
    /// One slot per entry: its value's text, `None` if it has no value.
    slots: Vec<Option<&'a [u8]>>,
}

impl<'a> ValueBatch<'a> {
    /// The most bytes of values that share one buffer.
    pub(crate) const CHUNK: usize = 4096;
    /// The longest value that shares a buffer.
    pub(crate) const MAX_PACKED: usize = 512;
    /// The fewest entries worth a batch.
    pub(crate) const WORTH_IT: usize = 4;

    /// A batch for a reply of `entries` entries, or `None` if there are
    /// too few to be worth one.
    pub(crate) fn for_entries(entries: usize) -> Option<Self> {
        (entries >= Self::WORTH_IT).then(|| ValueBatch {
            slots: Vec::with_capacity(entries),
        })
    }

    /// Queues the next entry's value: its base64 text, `None` if it has no
    /// value.
    pub(crate) fn push(&mut self, text: Option<&'a [u8]>) {
        self.slots.push(text);
    }

    /// Decodes every queued value, as [`decode`] would, and hands each to
    /// `each` in the order they were pushed (`None` for an entry without a
    /// value). An error if any text is not padded standard base64 (the
    /// values before it may have been handed out).
    pub(crate) fn decode(self, mut each: impl FnMut(Option<Bytes>)) -> Result<(), DecodeError> {
        let slots = &self.slots[..];
        let mut start = 0;
        while start < slots.len() {
            // The run of short values (and entries without one) that fills
            // the next buffer.
            let (mut end, mut total, mut texts) = (start, 0, 0);
            while let Some(len) = slots.get(end).and_then(|slot| match slot {
                None => Some(0),
                Some(text) => canonical_len(text)
                    .map(|(len, _)| len)
                    .filter(|&len| len <= Self::MAX_PACKED && total + len <= Self::CHUNK),
            }) {
                total += len;
                texts += usize::from(slots[end].is_some());
                end += 1;
            }
            if texts >= 2 && decode_shared(&slots[start..end], total, &mut each) {
                start = end;
                continue;
            }
            // A value by itself, or a run with a text that is not canonical
            // base64: each value alone, and the engine names any error.
            let end = end.max(start + 1);
            for slot in &slots[start..end] {
                each(slot.map(decode).transpose()?);
            }
            start = end;
        }
        Ok(())
    }
}

/// Decodes the `slots`' texts (`total` bytes once decoded) into one buffer
/// and hands a slice of it per slot to `each`; false, having handed out
/// nothing, if a text is not canonical base64.
fn decode_shared(
    slots: &[Option<&[u8]>],
    total: usize,
    each: &mut impl FnMut(Option<Bytes>),
) -> bool {
    let mut buffer = vec![0; total];
    let mut at = 0;
    for text in slots.iter().flatten() {
        let Some((len, padding)) = canonical_len(text) else {
            return false;
        };
        let Some(out) = buffer.get_mut(at..at + len) else {
            return false;
        };
        if !decode_canonical(text, padding, out) {
            return false;
        }
        at += len;
    }
    let buffer = Bytes::from(buffer);
    let mut at = 0;
    for slot in slots {
        each(slot.map(|text| {
            let len = canonical_len(text).map_or(0, |(len, _)| len);
            at += len;
            buffer.slice(at - len..at)
        }));
    }
    true
}

/// The decoded length and the padding of `text`, if it is a multiple of 4
/// long (what padded base64 is).
fn canonical_len(text: &[u8]) -> Option<(usize, usize)> {
    if text.len() % 4 != 0 {
        return None;
    }
    let padding = text
        .iter()
        .rev()
        .take(2)
        .take_while(|&&b| b == b'=')
        .count();
    // "====" and the like: no room for the padding; the engine decides.
    (text.len() / 4 * 3)
        .checked_sub(padding)
        .map(|len| (len, padding))
}

/// Encodes `bytes` as padded standard base64 (what Consul and etcd take)
/// into a `String` of exactly its length, a triple at a time by table. The
/// engine's `encode` cost etcd's short keys and values ~600 instructions
/// each (callgrind), most of it set-up around its wide loop.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    let mut push = |word: u32, symbols: usize| {
        for at in 0..symbols {
            let sextet = word >> (18 - 6 * at) & 0x3F;
            text.push(char::from(ALPHABET[sextet as usize]));
        }
    };
    let mut triples = bytes.chunks_exact(3);
    for triple in triples.by_ref() {
        push(u32::from_be_bytes([0, triple[0], triple[1], triple[2]]), 4);
    }
    match *triples.remainder() {
        [a] => {
            push(u32::from_be_bytes([0, a, 0, 0]), 2);
            text.push_str("==");
        }
        [a, b] => {
            push(u32::from_be_bytes([0, a, b, 0]), 3);
            text.push('=');
        }
        _ => {}
    }
    text
}

/// The standard alphabet, in the order of the 6-bit values.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The standard alphabet's 6-bit values; `INVALID` for every other byte.
const SEXTETS: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut at = 0;
    while at < ALPHABET.len() {
        table[ALPHABET[at] as usize] = at as u8;
        at += 1;
    }
    table
};
const INVALID: u8 = 0xFF;

/// Decodes `text` (a multiple of 4 long, ending in `padding` `=`) into
/// `out` (exactly its decoded length). False, with `out` partly written,
/// unless the text is canonical base64: every other byte in the alphabet
/// and the bits the padding drops zero.
fn decode_canonical(text: &[u8], padding: usize, out: &mut [u8]) -> bool {
    let whole = if padding == 0 {
        text.len()
    } else {
        text.len() - 4
    };
    let mut seen = 0;
    for (quad, triple) in text[..whole].chunks_exact(4).zip(out.chunks_exact_mut(3)) {
        triple.copy_from_slice(&pack(quad, &mut seen).to_be_bytes()[1..]);
    }
    if padding > 0 {
        let kept = 4 - padding;
        let word = pack(&text[whole..whole + kept], &mut seen);
        // 2 sextets carry 1 byte and 4 spare bits; 3 carry 2 and 2 spare.
        let spare = 6 * kept - 8 * (kept - 1);
        if word & ((1 << spare) - 1) != 0 {
            return false;
        }
        // One or two bytes, stored one by one: a `copy_from_slice` of an
        // unknown length is a call to `memcpy`.
        let bytes = (word >> spare).to_le_bytes();
        for (slot, byte) in out[whole / 4 * 3..].iter_mut().rev().zip(bytes) {
            *slot = byte;
        }
    }
    seen & INVALID & !0x3F == 0
}

/// The sextets of `symbols` packed into the low bits of a word; every
/// sextet is ORed into `seen`, which so keeps `INVALID`'s high bits if
/// any symbol is not in the alphabet.
fn pack(symbols: &[u8], seen: &mut u8) -> u32 {
    symbols.iter().fold(0, |word, &symbol| {
        let sextet = SEXTETS[usize::from(symbol)];
        *seen |= sextet;
        word << 6 | u32::from(sextet)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_exactly_what_the_engine_encodes() {
        let mut seed = 0x2545_F491_4F6C_DD1D_u64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let text = encode(&bytes);
            assert_eq!(text, STANDARD.encode(&bytes), "{bytes:?}");
            assert_eq!(text.capacity(), text.len());
        }
        for byte in 0..=255u8 {
            for bytes in [&[byte][..], &[byte, !byte], &[byte, 0, byte]] {
                assert_eq!(encode(bytes), STANDARD.encode(bytes));
            }
        }
    }

    /// The values of `slots`, through a batch.
    fn batched(slots: &[Option<&[u8]>]) -> Result<Vec<Option<Bytes>>, DecodeError> {
        let mut batch =
            ValueBatch::for_entries(slots.len().max(ValueBatch::WORTH_IT)).expect("enough entries");
        slots.iter().for_each(|&slot| batch.push(slot));
        let mut values = Vec::new();
        batch.decode(|value| values.push(value))?;
        Ok(values)
    }

    #[test]
    fn a_batch_decodes_each_value_as_decode_does_sharing_buffers() {
        let lens = [0, 1, 2, 3, 13, 200, 511, 512, 513, 3000, 5000, 7, 7, 7];
        let texts: Vec<Option<String>> = (0..400)
            .map(|i| (i % 17 != 3).then(|| STANDARD.encode(vec![i as u8; lens[i % lens.len()]])))
            .collect();
        let slots: Vec<Option<&[u8]>> = texts
            .iter()
            .map(|t| t.as_deref().map(str::as_bytes))
            .collect();
        let values = batched(&slots).expect("base64");
        assert_eq!(values.len(), slots.len());
        for (value, slot) in values.iter().zip(&slots) {
            let expected = slot.map(|text| decode(text).expect("base64"));
            assert_eq!(value, &expected);
        }
        // Short neighbours share a buffer: each starts where the last ends.
        let [Some(a), Some(b), ..] = &values[1..] else {
            panic!()
        };
        assert_eq!(a.as_ptr().wrapping_add(a.len()), b.as_ptr());
        assert!(ValueBatch::for_entries(ValueBatch::WORTH_IT - 1).is_none());

        // One text the engine rejects, anywhere in a run: the batch fails
        // with the engine's error.
        for at in [0, 5, 399] {
            let mut bad = slots.clone();
            bad[at] = Some(b"aGl=");
            assert_eq!(
                batched(&bad).err(),
                STANDARD.decode("aGl=").err(),
                "at {at}"
            );
        }
    }

    #[test]
    fn decodes_exactly_what_the_engine_decodes() {
        for text in [
            "",
            "aA==",
            "aGk=",
            "aGVs",
            "aGVsbG8=",
            "MTAuMC4wLjE6NzAwMA==",
            "a",
            "aGk",
            "aG=k",
            "====",
            "aGVsbG8",
            "!!!!",
            "aGk=aGk=",
        ] {
            let ours = decode_vec(text.as_bytes());
            assert_eq!(
                ours.as_ref().ok(),
                STANDARD.decode(text).as_ref().ok(),
                "{text}"
            );
            if let Ok(bytes) = ours {
                assert_eq!(bytes.capacity(), bytes.len(), "{text}");
            }
        }
    }

    #[test]
    fn the_table_decodes_what_the_engine_decodes_or_defers_to_it() {
        // Every quad over a few symbols that matter (a first, a last and
        // middle letters, padding, a stray byte), alone and after a valid,
        // a padded and an invalid quad; then random longer texts.
        let symbols = b"AQgw/+=!";
        let mut texts: Vec<Vec<u8>> = vec![Vec::new()];
        for prefix in [&b""[..], b"QUFB", b"QQ==", b"A!AA"] {
            for mut n in 0..symbols.len().pow(4) {
                let mut text = prefix.to_vec();
                for _ in 0..4 {
                    text.push(symbols[n % symbols.len()]);
                    n /= symbols.len();
                }
                texts.push(text);
            }
        }
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = 4 * (seed % 9) as usize;
            let bytes: Vec<u8> = (0..len / 4 * 3)
                .map(|i| (seed >> (i % 56)) as u8 ^ i as u8)
                .collect();
            let mut text = STANDARD.encode(&bytes).into_bytes();
            if seed % 5 == 0 && !text.is_empty() {
                let at = (seed >> 8) as usize % text.len();
                text[at] = symbols[(seed >> 16) as usize % symbols.len()];
            }
            texts.push(text);
        }
        for text in texts {
            let ours = decode_vec(&text);
            let engine = STANDARD.decode(&text);
            assert_eq!(
                ours.is_ok(),
                engine.is_ok(),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
            if let (Ok(ours), Ok(engine)) = (ours, engine) {
                assert_eq!(ours, engine, "{:?}", String::from_utf8_lossy(&text));
            }
        }
    }
}
