//! Every key under a prefix, as of one moment.
//!
//! ZooKeeper reads a tree one node at a time, so a range is read level by
//! level (each level's nodes in `multi` reads of [`BATCH`] nodes: data,
//! stat and children). ZooKeeper applies no write while it serves a read
//! (its CommitProcessor), so one `multi` is one moment: a range whose keys
//! all sit one level below the node it starts at, read in one `multi` that
//! also finds that node's children unchanged, is done. Otherwise every node
//! read (and the start) is read once more: when no node's `mzxid` (its
//! data) or `pzxid` (its children) moved and none went away, nothing under
//! the prefix changed between the two reads, and the first read is the
//! state of the moment between them. Otherwise the read starts over.

use std::collections::HashMap;

use zookeeper_client as zk;

use super::nodes::{PARENT, is_deleted_key, is_marker, pair_of, version_of};
use super::paths::range_start;
use super::session::{Repeat, Session};
use super::walk::{BATCH, Node, walk};
use crate::{KvPair, Result};

/// How many times a read starts over before it gives up.
const ROUNDS: usize = 50;

/// Every key under a prefix as of one moment, with what a watch needs to
/// date the deletes it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Sorted by key.
    pub(crate) pairs: Vec<KvPair>,
    /// The deleted keys whose marker stands, at the marker's version (the
    /// delete's).
    pub(crate) deleted: HashMap<String, u64>,
    /// The highest zxid the state shows (every node's `mzxid` and `pzxid`,
    /// and the start's): at or above any delete in it, and higher for every
    /// later change.
    pub(crate) zxid: u64,
}

/// Every key under `prefix` (a plain string prefix), sorted by key, as of
/// after every write that ended before the call ([`super::nodes::fresh`]).
pub(crate) async fn read_range(session: &Session, root: &str, prefix: &str) -> Result<Vec<KvPair>> {
    Ok(read_state(session, root, prefix, true).await?.pairs)
}

/// The state under `prefix`, as of one moment (for a watch, which reads
/// again after each change: the server it is on may lag behind).
pub(crate) async fn read_snapshot(session: &Session, root: &str, prefix: &str) -> Result<Snapshot> {
    read_state(session, root, prefix, false).await
}

async fn read_state(session: &Session, root: &str, prefix: &str, fresh: bool) -> Result<Snapshot> {
    session
        .run("zookeeper get_range", Repeat::Safe, |client| async move {
            for round in 0..ROUNDS {
                let once = read_once(&client, root, prefix);
                let read = if fresh && round == 0 {
                    super::nodes::fresh(session, &client, root, once).await?
                } else {
                    once.await?
                };
                if let Some(snapshot) = read {
                    return Ok(snapshot);
                }
            }
            Err(zk::Error::UnexpectedError(format!(
                "the keys under {prefix:?} kept changing during {ROUNDS} reads"
            )))
        })
        .await
}

/// One walk and its check; `None` when something changed during it.
async fn read_once(
    client: &zk::Client,
    root: &str,
    prefix: &str,
) -> std::result::Result<Option<Snapshot>, zk::Error> {
    let Some(walk) = walk(client, root, prefix).await? else {
        return Ok(None);
    };
    let Some((start, start_stat)) = &walk.start else {
        let (start, _) = range_start(root, prefix);
        return Ok(Some(Snapshot {
            pairs: Vec::new(),
            deleted: HashMap::new(),
            zxid: nearest_pzxid(client, &start).await?,
        }));
    };
    if !walk.one_moment && !unchanged(client, start, start_stat, &walk.nodes).await? {
        return Ok(None);
    }
    let mut zxid = zxid_of(start_stat.mzxid.max(start_stat.pzxid));
    let mut pairs = Vec::with_capacity(walk.nodes.len());
    let mut deleted = HashMap::new();
    for node in walk.nodes {
        zxid = zxid.max(zxid_of(node.stat.mzxid.max(node.stat.pzxid)));
        if is_deleted_key(&node.data, &node.stat) {
            deleted.insert(node.key, version_of(&node.stat)?);
        } else if let Some(pair) = pair_of(&node.key, node.data, &node.stat)? {
            pairs.push(pair);
        }
    }
    pairs.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Some(Snapshot {
        pairs,
        deleted,
        zxid,
    }))
}

fn zxid_of(zxid: i64) -> u64 {
    u64::try_from(zxid).unwrap_or(0)
}

/// The `pzxid` of the nearest existing node at or above `path`: at or
/// above the zxid that deleted anything that was under it.
pub(crate) async fn nearest_pzxid(
    client: &zk::Client,
    path: &str,
) -> std::result::Result<u64, zk::Error> {
    let mut at = path;
    loop {
        if let Some(stat) = client.check_stat(at).await? {
            return Ok(zxid_of(stat.pzxid.max(stat.mzxid)));
        }
        match at.rfind('/') {
            Some(0) | None => at = "/",
            Some(end) => at = &at[..end],
        }
    }
}

/// Whether the start and every node read still have the data and children
/// they had.
async fn unchanged(
    client: &zk::Client,
    start: &str,
    start_stat: &zk::Stat,
    nodes: &[Node],
) -> std::result::Result<bool, zk::Error> {
    let mut checks: Vec<(&str, &zk::Stat)> = vec![(start, start_stat)];
    checks.extend(nodes.iter().map(|n| (n.path.as_str(), &n.stat)));
    for batch in checks.chunks(BATCH * 2) {
        let mut reader = client.new_multi_reader();
        for (path, _) in batch {
            reader.add_get_data(path)?;
        }
        let answers = reader.commit().await?;
        if answers.len() != batch.len() {
            return Err(zk::Error::UnexpectedError(format!(
                "a multi read of {} nodes answered {}",
                batch.len(),
                answers.len()
            )));
        }
        for ((_, before), now) in batch.iter().zip(answers) {
            match now {
                zk::MultiReadResult::Data { stat, .. }
                    if stat.mzxid == before.mzxid && stat.pzxid == before.pzxid => {}
                zk::MultiReadResult::Error { err } if err != zk::Error::NoNode => return Err(err),
                _ => return Ok(false),
            }
        }
    }
    Ok(true)
}

/// Deletes every key under `prefix`: each key's node takes [`PARENT`]
/// (see [`super::nodes`]), [`BATCH`] to a `multi`, each at the version read
/// (a key written meanwhile stays: the next round reads it again).
pub(crate) async fn delete_range(session: &Session, root: &str, prefix: &str) -> Result<()> {
    session
        .run(
            "zookeeper delete_range",
            Repeat::Unsafe,
            |client| async move {
                for _ in 0..ROUNDS {
                    let Some(walk) = walk(&client, root, prefix).await? else {
                        continue;
                    };
                    // Keys, and lock contenders (deleting a lock's key breaks it).
                    let contender = |n: &Node| {
                        n.stat.ephemeral_owner != 0
                            && n.path
                                .rsplit('/')
                                .next()
                                .is_some_and(super::contenders::is_contender_name)
                    };
                    let keys: Vec<&Node> = walk
                        .nodes
                        .iter()
                        .filter(|n| !is_marker(&n.data) || contender(n))
                        .collect();
                    if keys.is_empty() {
                        return Ok(());
                    }
                    for batch in keys.chunks(BATCH) {
                        let mut writer = client.new_multi_writer();
                        for node in batch {
                            if contender(node) {
                                writer.add_delete(&node.path, None)?;
                            } else {
                                writer.add_set_data(&node.path, PARENT, Some(node.stat.version))?;
                            }
                        }
                        match writer.commit().await {
                            Ok(_) | Err(zk::MultiWriteError::OperationFailed { .. }) => {}
                            Err(zk::MultiWriteError::RequestFailed { source }) => {
                                return Err(source);
                            }
                        }
                    }
                }
                Err(zk::Error::UnexpectedError(format!(
                    "the keys under {prefix:?} kept changing during {ROUNDS} deletes"
                )))
            },
        )
        .await
}
