//! Base64 values from a reply, decoded into buffers of exactly their size.
//!
//! `base64`'s own `decode` reserves a rounded-up estimate, and a `Bytes`
//! made from a `Vec` whose capacity exceeds its length allocates a second,
//! shared header; a listing of 100 values paid 200 allocations for 100.

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
    if text.len() % 4 != 0 {
        // Not padded base64: let the engine name the error.
        return STANDARD.decode(text);
    }
    let padding = text
        .iter()
        .rev()
        .take(2)
        .take_while(|&&b| b == b'=')
        .count();
    // Not `vec![0; n]`: that is a `calloc`, dearer than a `malloc` and a
    // short fill for the short values a listing holds (callgrind: 70
    // instructions a value).
    #[expect(
        clippy::slow_vector_initialization,
        reason = "measured: values are short"
    )]
    let mut decoded = Vec::with_capacity(text.len() / 4 * 3 - padding);
    decoded.resize(decoded.capacity(), 0);
    match STANDARD.decode_slice(text, &mut decoded) {
        Ok(written) if written == decoded.len() => Ok(decoded),
        // Padding in the wrong place, say: the engine names the error.
        _ => STANDARD.decode(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
