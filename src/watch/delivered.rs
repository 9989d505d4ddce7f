//! Where a watch stands, for a re-read from the middle of a txn: a txn's
//! changes share one version, so a watch that delivered some of them and
//! then has to re-read (its backend's log or history no longer reaches
//! back) re-reads from before that version and skips the keys it already
//! delivered there. Used by every backend whose watches re-read (the local
//! stores, Redis), so that none repeats or misses the rest of a txn.

use crate::KvEvent;

/// The last version a watch delivered changes of, and which.
#[derive(Debug, Default, Clone)]
pub(crate) struct Delivered {
    version: u64,
    /// Every change up to `version` was delivered.
    whole: bool,
    /// The keys delivered at `version` while it may not be whole.
    keys: Vec<String>,
}

impl Delivered {
    /// Every change up to `version` was delivered (an initial state, a
    /// re-read, a catch-up to the store's present).
    pub(crate) fn whole(version: u64) -> Self {
        Delivered {
            version,
            whole: true,
            keys: Vec::new(),
        }
    }

    /// One change was delivered; others of its version may follow.
    pub(crate) fn record(&mut self, key: &str, version: u64) {
        if version != self.version || self.whole {
            self.keys.clear();
        }
        self.version = version;
        self.whole = false;
        self.keys.push(key.to_owned());
    }

    /// The version a re-read yields the changes after: the last delivered
    /// one when it is whole, else the one before it.
    pub(crate) fn reread_after(&self) -> u64 {
        if self.whole {
            self.version
        } else {
            self.version.saturating_sub(1)
        }
    }

    /// True for a change a re-read after [`Delivered::reread_after`] yields
    /// that this watch delivered already.
    pub(crate) fn is_repeat(&self, event: &KvEvent) -> bool {
        !self.whole
            && event.version() == self.version
            && self.keys.iter().any(|key| key == event.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, version: u64) -> KvEvent {
        KvEvent::Put(crate::KvPair {
            key: key.into(),
            value: bytes::Bytes::new(),
            version,
        })
    }

    /// A txn's three changes at version 7, one delivered: the re-read goes
    /// from 6 and yields the other two, not the first again.
    #[test]
    fn a_reread_mid_txn_yields_the_rest_of_it_once() {
        let mut delivered = Delivered::whole(5);
        delivered.record("a", 6);
        delivered.record("t/1", 7);
        assert_eq!(delivered.reread_after(), 6);
        let reread = [put("t/1", 7), put("t/2", 7), put("t/3", 7), put("u", 8)];
        let yielded: Vec<&str> = reread
            .iter()
            .filter(|e| !delivered.is_repeat(e))
            .map(KvEvent::key)
            .collect();
        assert_eq!(yielded, ["t/2", "t/3", "u"]);
    }

    #[test]
    fn a_whole_version_is_reread_after_itself() {
        let delivered = Delivered::whole(9);
        assert_eq!(delivered.reread_after(), 9);
        assert!(!delivered.is_repeat(&put("k", 9)));
    }
}
