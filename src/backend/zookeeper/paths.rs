//! Where a key lives in ZooKeeper's tree, and back.
//!
//! A key is split at each `/`; each piece is one node name under the
//! store's root (`/kvmesh` unless the URL names another), so `a/b` is the
//! node `/kvmesh/a/b`, which ZooKeeper's own tools read as it is. A name
//! ZooKeeper would refuse or read as something else is escaped, one `%XX`
//! per UTF-8 byte:
//! - `%` itself (so every escape reads back exactly);
//! - the characters ZooKeeper refuses in a path: U+0000–U+001F,
//!   U+007F–U+009F, U+E000–U+F8FF, U+FFF0–U+FFFF, and every character
//!   outside the Basic Multilingual Plane (Java stores them as surrogates,
//!   which ZooKeeper refuses);
//! - a name that is `.` or `..` (`%2E`, `%2E%2E`);
//! - the `_` of a name starting `_c_` (`%5Fc_`): lock contenders' names
//!   (Curator's `_c_<uuid>-lock-<n>`) are never a key's.
//!
//! An empty piece (`a//b`, a leading or trailing `/`) is the name `%`
//! alone, which no escape produces. Decoding is strict: a node name that
//! is not exactly what encoding gives (a bad escape, an escape that was not
//! needed) is not a key, so two nodes never read as one key.

use crate::{Error, Result};

/// The root when the URL names none.
pub(crate) const DEFAULT_ROOT: &str = "/kvmesh";

/// The name an empty piece of a key gets.
const EMPTY_PIECE: &str = "%";

/// Whether ZooKeeper refuses `c` in a path (its `PathUtils.validatePath`),
/// or kvmesh's own escapes need it escaped.
fn must_escape(c: char) -> bool {
    matches!(c,
        '%'
        | '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{e000}'..='\u{f8ff}'
        | '\u{fff0}'..='\u{ffff}'
    ) || u32::from(c) > 0xffff
}

/// The node name of one piece of a key.
fn encode_piece(piece: &str, out: &mut String) {
    if piece.is_empty() {
        out.push_str(EMPTY_PIECE);
        return;
    }
    if piece == "." || piece == ".." {
        for _ in 0..piece.len() {
            out.push_str("%2E");
        }
        return;
    }
    let mut bytes = [0u8; 4];
    // `_c_` starts a lock contender's name (Curator's): a key's never does.
    let piece = match piece.strip_prefix("_c_") {
        Some(rest) => {
            out.push_str("%5F");
            out.push_str("c_");
            rest
        }
        None => piece,
    };
    for c in piece.chars() {
        if must_escape(c) {
            for byte in c.encode_utf8(&mut bytes).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
}

/// The piece of a key a node name stands for; `None` when the name is not
/// one kvmesh's encoding gives.
pub(crate) fn decode_piece(name: &str) -> Option<String> {
    if name == EMPTY_PIECE {
        return Some(String::new());
    }
    let mut bytes = Vec::with_capacity(name.len());
    let mut rest = name.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = tail.get(..2)?;
            let text = std::str::from_utf8(hex).ok()?;
            if text.to_ascii_uppercase() != text {
                return None;
            }
            bytes.push(u8::from_str_radix(text, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    let piece = String::from_utf8(bytes).ok()?;
    // Strict: only the name encoding gives stands for this piece.
    let mut again = String::with_capacity(name.len());
    encode_piece(&piece, &mut again);
    (again == name).then_some(piece)
}

/// The store's root path from a URL's path part: `None` or `/` is the
/// default root; otherwise a plain ZooKeeper path (no trailing `/`, no empty
/// or `.`/`..` names, no character ZooKeeper refuses).
pub(crate) fn root(chroot: Option<&str>) -> Result<String> {
    let Some(path) = chroot.filter(|p| !p.is_empty() && *p != "/") else {
        return Ok(DEFAULT_ROOT.to_owned());
    };
    let refuse = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "the ZooKeeper root {path:?} {why}"
        )))
    };
    let Some(names) = path.strip_prefix('/') else {
        return refuse("must start with /");
    };
    for name in names.split('/') {
        if name.is_empty() || name == "." || name == ".." {
            return refuse("has an empty, . or .. name (or ends with /)");
        }
        if name.chars().any(|c| c != '%' && must_escape(c)) {
            return refuse("has a character ZooKeeper refuses in a path");
        }
    }
    if path == "/zookeeper" || path.starts_with("/zookeeper/") {
        return refuse("is ZooKeeper's own /zookeeper tree");
    }
    Ok(path.to_owned())
}

/// The node path of `key` under `root`.
pub(crate) fn node_path(root: &str, key: &str) -> String {
    let mut path = String::with_capacity(root.len() + key.len() + 8);
    path.push_str(root);
    for piece in key.split('/') {
        path.push('/');
        encode_piece(piece, &mut path);
    }
    path
}

/// The key a node path under `root` stands for; `None` when it is the
/// root, outside it, or a name encoding does not give.
pub(crate) fn key_of(root: &str, path: &str) -> Option<String> {
    let names = path.strip_prefix(root)?.strip_prefix('/')?;
    let mut key = String::with_capacity(names.len());
    for (index, name) in names.split('/').enumerate() {
        if index > 0 {
            key.push('/');
        }
        key.push_str(&decode_piece(name)?);
    }
    Some(key)
}

/// Where a range read of `prefix` starts: the deepest node every key with
/// that prefix lies under (the node of the prefix's whole pieces), and the
/// piece before the last `/` that keys must start with there.
///
/// `a/b` → node of `a`, children starting with `b`; `a/` → node of `a`,
/// every child; `ab` → the root, children starting with `ab`.
pub(crate) fn range_start(root: &str, prefix: &str) -> (String, String) {
    match prefix.rsplit_once('/') {
        Some((whole, partial)) => (node_path(root, whole), partial.to_owned()),
        None => (root.to_owned(), prefix.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "/kvmesh";

    #[test]
    fn every_key_round_trips() {
        for key in [
            "a",
            "a/b/c",
            "a//b",
            "/lead",
            "trail/",
            "/",
            "//",
            ".",
            "..",
            "a/./b",
            "a/../b",
            ".hidden",
            "...",
            "100%",
            "%25",
            "%",
            "tab\there",
            "nul\0byte",
            "del\u{7f}",
            "c1\u{85}",
            "emoji 🦀",
            "private \u{e000}",
            "\u{fff0}\u{ffff}",
            "space and ?#&=+\"'\\",
            "_c_a-lock-1",
            "x/_c_",
            "ünïcödé 日本",
        ] {
            let path = node_path(ROOT, key);
            assert_eq!(
                key_of(ROOT, &path).as_deref(),
                Some(key),
                "{key:?} as {path}"
            );
            // ZooKeeper's rules for a path hold.
            for name in path[1..].split('/') {
                assert!(!name.is_empty() && name != "." && name != "..", "{path}");
                assert!(!name.chars().any(|c| c != '%' && must_escape(c)), "{path}");
            }
        }
    }

    #[test]
    fn plain_keys_are_plain_paths() {
        assert_eq!(node_path(ROOT, "services/web/1"), "/kvmesh/services/web/1");
        assert_eq!(node_path("/app", "a b"), "/app/a b");
        assert_eq!(node_path(ROOT, "a//b"), "/kvmesh/a/%/b");
        assert_eq!(node_path(ROOT, "a/../b"), "/kvmesh/a/%2E%2E/b");
        assert_eq!(node_path(ROOT, "50%"), "/kvmesh/50%25");
        assert_eq!(node_path(ROOT, "🦀"), "/kvmesh/%F0%9F%A6%80");
        assert_eq!(node_path(ROOT, "k/_c_x-lock-1"), "/kvmesh/k/%5Fc_x-lock-1");
        assert_eq!(
            decode_piece("_c_x-lock-1"),
            None,
            "a contender's name is no key"
        );
    }

    #[test]
    fn names_encoding_does_not_give_are_not_keys() {
        for name in ["%zz", "%2", "%2e", "%41", "a%", "%%", "%C3"] {
            assert_eq!(decode_piece(name), None, "{name}");
        }
        assert_eq!(key_of(ROOT, "/kvmesh"), None);
        assert_eq!(key_of(ROOT, "/kvmeshx/a"), None);
        assert_eq!(key_of(ROOT, "/other/a"), None);
    }

    #[test]
    fn roots() {
        assert_eq!(root(None).unwrap(), "/kvmesh");
        assert_eq!(root(Some("/")).unwrap(), "/kvmesh");
        assert_eq!(root(Some("/apps/one")).unwrap(), "/apps/one");
        for bad in [
            "apps",
            "/apps/",
            "/a//b",
            "/a/./b",
            "/zookeeper",
            "/zookeeper/q",
            "/a\u{1}",
        ] {
            assert!(
                matches!(root(Some(bad)), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn range_starts() {
        assert_eq!(range_start(ROOT, "a/b"), ("/kvmesh/a".into(), "b".into()));
        assert_eq!(range_start(ROOT, "a/"), ("/kvmesh/a".into(), "".into()));
        assert_eq!(range_start(ROOT, "ab"), ("/kvmesh".into(), "ab".into()));
        assert_eq!(range_start(ROOT, ""), ("/kvmesh".into(), "".into()));
    }
}
