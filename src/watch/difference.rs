//! The difference a watch yields when a store cannot replay what happened
//! (Consul's blocking-query results, etcd's re-read after a compaction,
//! Redis after a data loss), and a cache after a re-read of its prefix.

use std::collections::HashMap;

use crate::KvEvent;

/// What a watch has reported present: key → (version, value).
pub(crate) type Known = std::collections::BTreeMap<String, (u64, bytes::Bytes)>;

/// The entry [`Known`] keeps for `pair`.
pub(crate) fn known_entry(pair: &crate::KvPair) -> (String, (u64, bytes::Bytes)) {
    (pair.key.clone(), (pair.version, pair.value.clone()))
}

/// What a watch that has reported `known` must yield to reach `current`: a
/// `Put` per key that is new, at another version or with another value
/// (after a Consul index reset a rewritten key's version can be lower, or
/// even equal to the old one), a `Delete` per key
/// that is gone (at `deleted_at`, or just above the key's last version if
/// that is higher), in version order — a `Delete` first at a tie, since it
/// happened before the write whose index it borrows. Updates `known`.
///
/// Used where a store cannot replay what happened: Consul's blocking-query
/// results and etcd's re-read after a compaction.
pub(crate) fn difference(
    known: &mut Known,
    current: &[crate::KvPair],
    deleted_at: u64,
) -> Vec<KvEvent> {
    let present: HashMap<&str, &crate::KvPair> =
        current.iter().map(|p| (p.key.as_str(), p)).collect();
    let mut events: Vec<KvEvent> = known
        .iter()
        .filter(|(key, _)| !present.contains_key(key.as_str()))
        .map(|(key, (version, _))| KvEvent::Delete {
            key: key.clone(),
            version: deleted_at.max(version + 1),
        })
        .collect();
    events.extend(
        current
            .iter()
            .filter(|pair| {
                known
                    .get(&pair.key)
                    .is_none_or(|(version, value)| pair.version != *version || pair.value != *value)
            })
            .cloned()
            .map(KvEvent::Put),
    );
    events.sort_by_key(|e| (e.version(), matches!(e, KvEvent::Put(_))));
    for event in &events {
        match event {
            KvEvent::Put(pair) => {
                let (key, entry) = known_entry(pair);
                known.insert(key, entry);
            }
            KvEvent::Delete { key, .. } => {
                known.remove(key);
            }
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difference_yields_what_changed_in_version_order() {
        use crate::KvPair;
        let pair = |key: &str, version| KvPair {
            key: key.into(),
            value: Default::default(),
            version,
        };
        let mut known: Known = [pair("a", 1), pair("b", 2), pair("c", 3)]
            .iter()
            .map(known_entry)
            .collect();
        let current = [pair("a", 1), pair("c", 9), pair("d", 7)];
        let events = difference(&mut known, &current, 9);
        let summary: Vec<(&str, u64, bool)> = events
            .iter()
            .map(|e| (e.key(), e.version(), matches!(e, KvEvent::Put(_))))
            .collect();
        assert_eq!(summary, [("d", 7, true), ("b", 9, false), ("c", 9, true)]);
        assert_eq!(known.len(), 3);
        assert!(
            difference(&mut known, &current, 9).is_empty(),
            "nothing changed the second time"
        );
        // After a Consul index reset a key can come back at its old version
        // with another value: that is a change.
        let mut rewritten = pair("a", 1);
        rewritten.value = bytes::Bytes::from_static(b"new");
        let events = difference(&mut known, &[rewritten, pair("c", 9), pair("d", 7)], 9);
        assert!(
            matches!(&events[..], [KvEvent::Put(p)] if p.value == "new"),
            "{events:?}"
        );
    }
}
