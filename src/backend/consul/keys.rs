//! Consul keys: what can round-trip through `/v1/kv/<key>`, and its encoding.
//!
//! Consul decodes the path and Go's HTTP server then cleans it, so some keys
//! cannot be stored as given: `a//b`, `/a`, `a/./b` and `a/../b` are
//! redirected (or, percent-encoded, silently written to *another* key), and
//! Consul 1.22 refuses leading and trailing spaces and control characters.
//! kvmesh refuses those keys with [`Error::InvalidKey`] before any request,
//! and percent-encodes everything else, so that `?`, `#`, `%` and friends
//! never change the request.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::{Error, Result};

/// Everything but unreserved characters and `/` is escaped.
const KEY_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Query values escape `/` too.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Checks that Consul stores `key` exactly as given.
pub(super) fn check_key(key: &str) -> Result<()> {
    crate::key::check_key(key)?;
    check_shape(key)
}

/// Checks a range prefix: like a key, but the empty prefix is allowed and a
/// trailing partial segment is fine.
pub(super) fn check_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    check_shape(prefix)
}

fn check_shape(key: &str) -> Result<()> {
    if is_plainly_storable(key) {
        return Ok(());
    }
    let refuse = |why: &str| {
        Err(Error::invalid_key(
            key,
            format!("Consul cannot store it: {why}"),
        ))
    };
    if key.starts_with('/') {
        return refuse("it starts with '/'");
    }
    if key.contains("//") {
        return refuse("it contains '//'");
    }
    if key
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return refuse("it has a '.' or '..' segment");
    }
    if key.starts_with(' ') || key.ends_with(' ') {
        return refuse("it starts or ends with a space");
    }
    if key.chars().any(char::is_control) {
        return refuse("it contains a control character");
    }
    Ok(())
}

/// One pass over the bytes of `key` that is true only when none of
/// [`check_shape`]'s refusals applies; when false, `check_shape` looks
/// closer (a byte 0xC2 may start a C1 control or, say, `©`).
fn is_plainly_storable(key: &str) -> bool {
    let bytes = key.as_bytes();
    if let (Some(b'/' | b' '), _) | (_, Some(b' ')) = (bytes.first(), bytes.last()) {
        return false;
    }
    let dots = |segment: &[u8]| matches!(segment, b"." | b"..");
    let mut segment_start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        match byte {
            b'/' if at == segment_start || dots(&bytes[segment_start..at]) => return false,
            b'/' => segment_start = at + 1,
            0..=0x1f | 0x7f | 0xc2 => return false,
            _ => {}
        }
    }
    !dots(&bytes[segment_start..])
}

/// `/v1/kv/<escaped key>`.
pub(super) fn kv_path(key: &str) -> String {
    let mut path = String::with_capacity(7 + key.len() + key.len() / 4);
    path.push_str("/v1/kv/");
    path.extend(utf8_percent_encode(key, KEY_PATH));
    path
}

/// A query parameter value, escaped.
pub(super) fn query_value(value: &str) -> impl std::fmt::Display + '_ {
    utf8_percent_encode(value, QUERY_VALUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awkward_keys_are_escaped_not_interpreted() {
        assert_eq!(kv_path("a?recurse"), "/v1/kv/a%3Frecurse");
        assert_eq!(kv_path("x#y"), "/v1/kv/x%23y");
        assert_eq!(kv_path("100%"), "/v1/kv/100%25");
        assert_eq!(kv_path("%2F"), "/v1/kv/%252F");
        assert_eq!(kv_path("dir/with space"), "/v1/kv/dir/with%20space");
        assert_eq!(kv_path("ü"), "/v1/kv/%C3%BC");
    }

    #[test]
    fn the_one_pass_check_agrees_with_the_close_look() {
        let samples = [
            "a", "a/b", "a/b/", "/a", "a//b", ".", "..", "a/.", "a/../b", "./a", "a/.b", "...",
            " a", "a ", "a b", "\t", "x\u{7f}", "x\u{85}", "©", "ü", "a/", "a/b//",
        ];
        for key in samples {
            if is_plainly_storable(key) {
                assert!(check_shape(key).is_ok(), "{key:?}");
            }
        }
        assert!(is_plainly_storable("kvbench/consul/k0001"));
    }

    #[test]
    fn keys_consul_would_move_are_refused() {
        for key in [
            "/a",
            "a//b",
            "a/./b",
            "a/../b",
            "..",
            "a/..",
            " a",
            "a ",
            "tab\there",
            "nul\0",
        ] {
            assert!(
                matches!(check_key(key), Err(Error::InvalidKey { .. })),
                "{key:?}"
            );
        }
        for key in [
            "a",
            "a..",
            "..a",
            "a/b/",
            "with space",
            "x#y?z",
            "..%2F",
            "©/ü",
        ] {
            check_key(key).unwrap_or_else(|e| panic!("{key:?}: {e}"));
        }
        assert!(check_key("c1\u{85}control").is_err());
        assert!(check_key("").is_err());
        assert!(check_prefix("").is_ok());
    }
}
