//! The entries of a KV read as kvmesh keeps them: the pairs it hands out,
//! and apart from them the few sessions that hold keys.

use super::wire::KvEntry;
use crate::http::HttpReply;
use crate::{Error, KvPair, Result};

/// The entries of a KV read.
pub(super) fn parse(reply: &HttpReply, operation: &str) -> Result<Entries> {
    reply.json::<Vec<KvEntry>>(operation).map(Entries::from)
}

/// The entries of a `GET /v1/kv/...` reply, in Consul's order.
///
/// Each entry is read straight into the [`KvPair`] `get` and `get_range`
/// hand out; only held keys (locks) carry a session, kept on the side.
/// A pair's `version` is its `ModifyIndex`, checked to be non-zero when
/// the pair is handed out ([`Entries::into_first`],
/// [`Entries::into_sorted_pairs`]).
#[derive(Debug, Default, PartialEq)]
pub(super) struct Entries {
    pub(super) pairs: Vec<KvPair>,
    /// Each held key's place in `pairs`, and the id of the session holding it.
    pub(super) sessions: Vec<(usize, String)>,
}

impl From<Vec<KvEntry>> for Entries {
    fn from(entries: Vec<KvEntry>) -> Self {
        let mut sessions = Vec::new();
        let pairs = entries
            .into_iter()
            .enumerate()
            .map(|(at, entry)| {
                if let Some(session) = entry.session {
                    sessions.push((at, session));
                }
                KvPair {
                    key: entry.key,
                    value: entry.value.unwrap_or_default(),
                    version: entry.modify_index,
                }
            })
            .collect();
        Entries { pairs, sessions }
    }
}

impl Entries {
    /// The session holding the first key, if any.
    pub(super) fn first_session(&self) -> Option<&str> {
        match self.sessions.first() {
            Some((0, session)) => Some(session),
            _ => None,
        }
    }

    /// The first pair, the one a read of a single key finds.
    pub(super) fn into_first(self) -> Result<Option<KvPair>> {
        let first = self.pairs.into_iter().next();
        first.as_ref().map(check_version).transpose()?;
        Ok(first)
    }

    /// The pairs whose key `keep` accepts, sorted by key. Consul lists
    /// keys in order already, so sorting is rarely more than the check
    /// that they are.
    pub(super) fn into_sorted_pairs(self, keep: impl Fn(&str) -> bool) -> Result<Vec<KvPair>> {
        let mut pairs = self.pairs;
        pairs.retain(|pair| keep(&pair.key));
        pairs.iter().try_for_each(check_version)?;
        if !pairs.is_sorted_by(|a, b| a.key <= b.key) {
            // Keys are unique: an unstable sort orders them the same.
            pairs.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        }
        Ok(pairs)
    }
}

/// A stored key's `ModifyIndex` is never 0: a 0 is a reply to refuse.
fn check_version(pair: &KvPair) -> Result<()> {
    match pair.version {
        0 => Err(Error::malformed(format!(
            "{:?} has ModifyIndex 0",
            pair.key
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn entry(key: &str, index: u64, session: Option<&str>) -> KvEntry {
        KvEntry {
            key: key.to_owned(),
            value: index.is_multiple_of(2).then(|| Bytes::from(key.to_owned())),
            modify_index: index,
            session: session.map(str::to_owned),
            flags: 0,
        }
    }

    #[test]
    fn pairs_come_sorted_and_checked_with_their_sessions_aside() {
        let entries = Entries::from(vec![
            entry("b", 2, None),
            entry("a", 3, Some("s1")),
            entry("c", 4, None),
        ]);
        assert_eq!(entries.sessions, [(1, "s1".to_owned())]);
        assert_eq!(entries.first_session(), None);
        assert_eq!(entries.pairs[0].value, Bytes::from_static(b"b"));
        assert_eq!(entries.pairs[1].value, Bytes::new());
        let keys = |pairs: Vec<KvPair>| pairs.into_iter().map(|p| p.key).collect::<Vec<_>>();
        let sorted = entries.into_sorted_pairs(|key| key != "c").unwrap();
        assert_eq!(keys(sorted), ["a", "b"]);

        let held = Entries::from(vec![entry("a", 3, Some("s1"))]);
        assert_eq!(held.first_session(), Some("s1"));
        assert_eq!(held.into_first().unwrap().map(|p| p.version), Some(3));
        assert_eq!(Entries::default().into_first().unwrap(), None);
    }

    #[test]
    fn a_zero_modify_index_is_refused_where_it_is_handed_out() {
        let zero = || Entries::from(vec![entry("a", 0, None), entry("b", 1, None)]);
        assert!(matches!(
            zero().into_first(),
            Err(Error::MalformedReply { .. })
        ));
        assert!(matches!(
            zero().into_sorted_pairs(|_| true),
            Err(Error::MalformedReply { .. })
        ));
        // A pair left out is not handed out.
        assert_eq!(zero().into_sorted_pairs(|key| key == "b").unwrap().len(), 1);
    }
}
