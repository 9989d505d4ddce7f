//! etcd key ranges: a prefix becomes `[prefix, range_end)`.

/// The end of the range holding every key that starts with `prefix`: the
/// prefix with its last byte below 0xff incremented and the rest dropped.
/// `None` for a prefix of only 0xff bytes (or the empty prefix): then the
/// range is every key from `prefix` on, which etcd spells `range_end = "\0"`.
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_ends() {
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
        // A multi-byte UTF-8 prefix: its last byte is incremented, so every
        // key that starts with it is below the end.
        let end = prefix_end("ü".as_bytes());
        assert!("ü/x".as_bytes() < end.as_slice() && "ü".as_bytes() < end.as_slice());
    }
}
