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

use zookeeper_client as zk;

use std::collections::HashMap;

use super::nodes::{PARENT, is_deleted_key, is_marker, pair_of, version_of};
use super::paths::{decode_piece, range_start};
use super::session::{Repeat, Session};
use crate::{KvPair, Result};

/// Nodes per `multi` read.
const BATCH: usize = 128;

/// How many times a read starts over before it gives up.
const ROUNDS: usize = 50;

/// One node the walk read.
pub(crate) struct Node {
    pub(crate) path: String,
    pub(crate) key: String,
    pub(crate) data: Vec<u8>,
    pub(crate) stat: zk::Stat,
}

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

/// Every key under `prefix` (a plain string prefix), sorted by key.
pub(crate) async fn read_range(session: &Session, root: &str, prefix: &str) -> Result<Vec<KvPair>> {
    Ok(read_snapshot(session, root, prefix).await?.pairs)
}

/// The state under `prefix`, as of one moment.
pub(crate) async fn read_snapshot(session: &Session, root: &str, prefix: &str) -> Result<Snapshot> {
    session
        .run("zookeeper get_range", Repeat::Safe, |client| async move {
            for _ in 0..ROUNDS {
                if let Some(snapshot) = read_once(&client, root, prefix).await? {
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

/// What one walk read.
pub(crate) struct Walk {
    /// The node the walk started at and its stat; `None` when it is missing.
    pub(crate) start: Option<(String, zk::Stat)>,
    /// Every node under the prefix (keys and parents), level by level.
    pub(crate) nodes: Vec<Node>,
    /// Whether the nodes were read in one `multi` that also found the
    /// start's children unchanged (ZooKeeper applies no write while it
    /// serves a read, so one `multi` is one moment), or there were none.
    pub(crate) one_moment: bool,
}

/// Reads every node under `prefix`, level by level; `None` when a node
/// went away during the walk.
pub(crate) async fn walk(
    client: &zk::Client,
    root: &str,
    prefix: &str,
) -> std::result::Result<Option<Walk>, zk::Error> {
    let (start, partial) = range_start(root, prefix);
    let start_key = super::paths::key_of(root, &start);
    let Some((start_stat, children)) = read_start(client, &start).await? else {
        return Ok(Some(Walk {
            start: None,
            nodes: Vec::new(),
            one_moment: true,
        }));
    };
    // The first level: the start's children whose piece starts with the
    // prefix's last (partial) piece.
    let mut frontier: Vec<(String, String)> = children
        .into_iter()
        .filter_map(|name| {
            let piece = decode_piece(&name)?;
            piece.starts_with(&partial).then(|| {
                let key = match &start_key {
                    Some(parent) => format!("{parent}/{piece}"),
                    None => piece,
                };
                (format!("{start}/{name}"), key)
            })
        })
        .collect();
    let mut nodes = Vec::new();
    // One `multi` for the whole first level, with the start again: if that
    // is all there is, it is one moment.
    let mut one_moment = frontier.len() <= BATCH;
    let mut first = true;
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for batch in frontier.chunks(BATCH) {
            let again = first.then_some(start.as_str());
            first = false;
            let Some((start_again, read)) = read_batch(client, batch, again).await? else {
                return Ok(None);
            };
            if start_again.is_some_and(|stat| stat.pzxid != start_stat.pzxid) {
                one_moment = false;
            }
            if read.iter().any(|(_, children)| !children.is_empty()) {
                one_moment = false;
            }
            for (node, children) in read {
                for name in children {
                    if let Some(piece) = decode_piece(&name) {
                        next.push((
                            format!("{}/{name}", node.path),
                            format!("{}/{piece}", node.key),
                        ));
                    }
                }
                nodes.push(node);
            }
        }
        frontier = next;
    }
    Ok(Some(Walk {
        start: Some((start, start_stat)),
        nodes,
        one_moment,
    }))
}

/// The start node's stat and children; `None` when it does not exist.
async fn read_start(
    client: &zk::Client,
    start: &str,
) -> std::result::Result<Option<(zk::Stat, Vec<String>)>, zk::Error> {
    let mut reader = client.new_multi_reader();
    reader.add_get_data(start)?;
    reader.add_get_children(start)?;
    let mut results = reader.commit().await?.into_iter();
    match (results.next(), results.next()) {
        (
            Some(zk::MultiReadResult::Data { stat, .. }),
            Some(zk::MultiReadResult::Children { children }),
        ) => Ok(Some((stat, children))),
        (
            Some(zk::MultiReadResult::Error {
                err: zk::Error::NoNode,
            }),
            _,
        ) => Ok(None),
        (Some(zk::MultiReadResult::Error { err }), _) => Err(err),
        _ => Err(zk::Error::UnexpectedError(
            "a multi read answered out of shape".into(),
        )),
    }
}

/// Data, stat and children of each `(path, key)`, in one `multi` (with
/// `start`'s stat first when given); `None` when one went away since its
/// parent was read.
async fn read_batch(
    client: &zk::Client,
    batch: &[(String, String)],
    start: Option<&str>,
) -> std::result::Result<Option<(Option<zk::Stat>, Vec<(Node, Vec<String>)>)>, zk::Error> {
    let mut reader = client.new_multi_reader();
    if let Some(start) = start {
        reader.add_get_data(start)?;
    }
    for (path, _) in batch {
        reader.add_get_data(path)?;
        reader.add_get_children(path)?;
    }
    let mut results = reader.commit().await?.into_iter();
    let start_stat = match start {
        None => None,
        Some(_) => match results.next() {
            Some(zk::MultiReadResult::Data { stat, .. }) => Some(stat),
            Some(zk::MultiReadResult::Error {
                err: zk::Error::NoNode,
            }) => return Ok(None),
            Some(zk::MultiReadResult::Error { err }) => return Err(err),
            _ => {
                return Err(zk::Error::UnexpectedError(
                    "a multi read answered out of shape".into(),
                ));
            }
        },
    };
    let mut read = Vec::with_capacity(batch.len());
    for (path, key) in batch {
        match (results.next(), results.next()) {
            (
                Some(zk::MultiReadResult::Data { data, stat }),
                Some(zk::MultiReadResult::Children { children }),
            ) => {
                let node = Node {
                    path: path.clone(),
                    key: key.clone(),
                    data,
                    stat,
                };
                read.push((node, children));
            }
            (
                Some(zk::MultiReadResult::Error {
                    err: zk::Error::NoNode,
                }),
                _,
            )
            | (
                _,
                Some(zk::MultiReadResult::Error {
                    err: zk::Error::NoNode,
                }),
            ) => return Ok(None),
            (Some(zk::MultiReadResult::Error { err }), _)
            | (_, Some(zk::MultiReadResult::Error { err })) => {
                return Err(err);
            }
            _ => {
                return Err(zk::Error::UnexpectedError(
                    "a multi read answered out of shape".into(),
                ));
            }
        }
    }
    Ok(Some((start_stat, read)))
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
            Repeat::Safe,
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
                                .is_some_and(super::lock::is_contender_name)
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
