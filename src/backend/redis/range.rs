//! Reading a key's or a prefix's state (for `get_range`, a watch's initial
//! state and its re-reads) without holding Redis for long: a prefix is read
//! in chunks of [`CHUNK`] keys, one short script each (Redis runs nothing
//! else during a script, lock renewals included). Chunks read at different
//! revisions are made one state, as of the last chunk's revision, from the
//! change log: each key gets the logged changes after the revision its own
//! chunk was read at. When the log no longer reaches back that far (writes
//! outran it), or the server lost the data between chunks (a new epoch),
//! the read starts over; after [`ATTEMPTS`], it is one script over the
//! whole prefix.

use std::collections::BTreeMap;

use bytes::Bytes;
use redis::streams::StreamRangeReply;

use super::client::Client;
use super::log::{LogEntry, after_version, follows, stream_id};
use crate::watch::WatchTarget;
use crate::{Error, KvEvent, KvPair, Result};

/// Keys read per script: at most 3.5 ms of Redis's time for 100-byte values
/// on this machine (100,000 keys: 100 scripts, against one of 321 ms read
/// whole), far under what a lock renewal can wait.
pub(super) const CHUNK: usize = 1_000;

/// Chunked reads tried before one whole read.
const ATTEMPTS: usize = 3;

/// Log entries read per XRANGE while making the chunks one state.
const PAGE: usize = 1_000;

/// A target's state as of one revision.
pub(super) struct ReadState {
    pub(super) revision: u64,
    /// Sorted by key.
    pub(super) pairs: Vec<KvPair>,
    /// With `after`: the deletions after it that the tombstones remember.
    pub(super) deleted: Vec<KvEvent>,
}

/// One script's reply: the revision, pairs (key, value, version), the
/// tombstone floor, deletions (key, version), 1 when there is more to read,
/// and the last key this chunk went through.
type Reply = (
    u64,
    Vec<(String, Vec<u8>, u64)>,
    u64,
    Vec<(String, u64)>,
    u8,
    String,
);

/// The state of `target` as of one revision, and with `after` the deletions
/// after it (`Compacted` if they are forgotten).
pub(super) async fn read_state(
    client: &Client,
    target: &WatchTarget,
    after: Option<u64>,
) -> Result<ReadState> {
    for _ in 0..ATTEMPTS {
        let epoch = client.epoch.current();
        let (mut state, chunks) = read_chunks(client, target, after, Some(CHUNK)).await?;
        // The server lost the data between chunks: the chunks are of two
        // data sets, which no log joins.
        let same_data = epoch.is_none() || client.epoch.current() == epoch;
        if same_data && state.made_one(client, target, after, &chunks).await? {
            return Ok(state);
        }
        tracing::debug!(
            "writes outran the change log (or the data was lost) during a chunked read; reading again"
        );
    }
    // One chunk: one revision.
    let (state, _) = read_chunks(client, target, after, None).await?;
    Ok(state)
}

/// What one chunk covers: keys up to `last` (`None`: to the end) not
/// covered by an earlier chunk, as of `revision`.
struct Chunk {
    revision: u64,
    last: Option<String>,
}

/// The chunks (of `chunk` keys; `None`: all in one) read one after another,
/// and what each covers.
async fn read_chunks(
    client: &Client,
    target: &WatchTarget,
    after: Option<u64>,
    chunk: Option<usize>,
) -> Result<(ReadState, Vec<Chunk>)> {
    let (mode, name) = match target {
        WatchTarget::Key(key) => ("key", key.as_str()),
        WatchTarget::Prefix(prefix) => ("prefix", prefix.as_str()),
    };
    let after_arg = after.map(|a| a.to_string()).unwrap_or_default();
    let limit = chunk.map(|c| c.to_string()).unwrap_or_default();
    let mut chunks = Vec::new();
    let mut pairs = Vec::new();
    let mut deleted = Vec::new();
    let mut from = String::new();
    loop {
        // Deletions are asked for once: the log brings them up to date.
        let after_now = if chunks.is_empty() { &after_arg } else { "" };
        let args: [&[u8]; 5] = [
            mode.as_bytes(),
            name.as_bytes(),
            after_now.as_bytes(),
            from.as_bytes(),
            limit.as_bytes(),
        ];
        let (revision, read, floor, buried, more, last): Reply =
            client.run("read", &client.scripts.state, &args).await?;
        client.epoch.saw(revision);
        if let Some(after) = after
            && chunks.is_empty()
            && after < floor
        {
            return Err(Error::Compacted {
                requested: after,
                oldest: floor,
            });
        }
        pairs.extend(read.into_iter().map(|(key, value, version)| KvPair {
            key,
            value: Bytes::from(value),
            version,
        }));
        deleted.extend(buried);
        if more == 0 {
            chunks.push(Chunk {
                revision,
                last: None,
            });
            break;
        }
        from.clone_from(&last);
        chunks.push(Chunk {
            revision,
            last: Some(last),
        });
    }
    let state = ReadState {
        revision: chunks.last().map_or(0, |c| c.revision),
        pairs,
        deleted: deleted
            .into_iter()
            .map(|(key, version)| KvEvent::Delete { key, version })
            .collect(),
    };
    Ok((state, chunks))
}

/// The log's entries after `from` up to `to`; `None` when it no longer
/// reaches back to `from`.
async fn logged(client: &Client, from: u64, to: u64) -> Result<Option<Vec<LogEntry>>> {
    let mut entries: Vec<LogEntry> = Vec::new();
    let mut last = after_version(from);
    let until = stream_id(after_version(to));
    loop {
        let command = redis::cmd("XRANGE")
            .arg(client.log_key())
            .arg(format!("({}", stream_id(last)))
            .arg(&until)
            .arg("COUNT")
            .arg(PAGE)
            .clone();
        let reply: StreamRangeReply = client.command("read", &command).await?;
        let page: Vec<LogEntry> = reply.ids.iter().filter_map(LogEntry::parse).collect();
        let Some(next) = page.first() else {
            // Every version up to `to` has entries: none left means done.
            return Ok((last.0 >= to).then_some(entries));
        };
        if !follows(last, next.position) {
            return Ok(None);
        }
        let full = page.len() == PAGE;
        last = page.last().map_or(last, |e| e.position);
        entries.extend(page);
        if !full {
            return Ok((last.0 >= to).then_some(entries));
        }
    }
}

impl ReadState {
    /// Makes chunks read at different revisions one state, as of the
    /// last; false when the log no longer reaches back to the first.
    async fn made_one(
        &mut self,
        client: &Client,
        target: &WatchTarget,
        after: Option<u64>,
        chunks: &[Chunk],
    ) -> Result<bool> {
        let first = chunks.first().map_or(0, |c| c.revision);
        if first == self.revision {
            return Ok(true);
        }
        let Some(changes) = logged(client, first, self.revision).await? else {
            return Ok(false);
        };
        let changes = changes.into_iter().filter(|c| target.matches(&c.key));
        self.apply(chunks, after, changes);
        Ok(true)
    }

    /// Brings every key up to the last chunk's revision: a logged change
    /// counts for a key when it came after the chunk that covers the key was
    /// read; with `after`, the deletions (read with the first chunk) take
    /// every change.
    fn apply(
        &mut self,
        chunks: &[Chunk],
        after: Option<u64>,
        changes: impl Iterator<Item = LogEntry>,
    ) {
        // Chunks are in key order; the last one covers the rest.
        let read_at = |key: &str| {
            let i = chunks.partition_point(|c| c.last.as_deref().is_some_and(|last| last < key));
            chunks.get(i).map_or(0, |c| c.revision)
        };
        let mut pairs: BTreeMap<String, KvPair> = std::mem::take(&mut self.pairs)
            .into_iter()
            .map(|pair| (pair.key.clone(), pair))
            .collect();
        let mut deleted: BTreeMap<String, u64> = std::mem::take(&mut self.deleted)
            .into_iter()
            .map(|event| (event.key().to_owned(), event.version()))
            .collect();
        for change in changes {
            let version = change.position.0;
            let key = change.key.clone();
            if version > read_at(&key) {
                match &change.value {
                    Some(value) => {
                        let pair = KvPair {
                            key: key.clone(),
                            value: value.clone(),
                            version,
                        };
                        pairs.insert(key.clone(), pair);
                    }
                    None => {
                        pairs.remove(&key);
                    }
                }
            }
            match (after, change.value) {
                (None, _) => None,
                (Some(_), Some(_)) => deleted.remove(&key),
                (Some(after), None) if version > after => deleted.insert(key, version),
                (Some(_), None) => None,
            };
        }
        self.pairs = pairs.into_values().collect();
        self.deleted = deleted
            .into_iter()
            .map(|(key, version)| KvEvent::Delete { key, version })
            .collect();
    }
}
