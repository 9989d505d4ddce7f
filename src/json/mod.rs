//! JSON parsing of what servers send.

pub(crate) mod compact;
pub(crate) mod plain;

use serde::Deserialize;

/// Parses `bytes` as JSON, checking UTF-8 once for the whole text.
///
/// serde_json's `from_slice` checks every string it reads, field names
/// included, one by one; on etcd's replies, which are mostly short strings
/// (its numbers are quoted), that costs as much as the rest of the parse.
/// JSON must be UTF-8 anyway (RFC 8259), so nothing valid is refused.
pub(crate) fn from_bytes<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    serde_json::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_serde_json_and_refuses_what_is_not_utf8() {
        let parsed: Vec<String> = from_bytes(br#"["a", "\u00fc"]"#).unwrap();
        assert_eq!(parsed, ["a", "ü"]);
        let error = from_bytes::<Vec<String>>(b"[\"\xff\"]").unwrap_err();
        assert!(error.contains("UTF-8"), "{error}");
        assert!(from_bytes::<Vec<String>>(b"[1]").is_err());
    }
}
