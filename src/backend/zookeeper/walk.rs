//! The walk under a prefix: every node below the node the prefix's keys lie
//! under, level by level, each level's nodes in `multi` reads of [`BATCH`]
//! nodes (their data and stats, then the children of those that have some).

use zookeeper_client as zk;

use super::paths::{decode_piece, range_start};

/// Nodes per `multi` read.
pub(crate) const BATCH: usize = 128;

/// One node the walk read.
pub(crate) struct Node {
    pub(crate) path: String,
    pub(crate) key: String,
    pub(crate) data: Vec<u8>,
    pub(crate) stat: zk::Stat,
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
            if read.iter().any(|(node, _)| node.stat.num_children > 0) {
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

/// Data, stat and children of each `(path, key)`: the data in one `multi`
/// (with `start`'s stat first when given), then the children of those that
/// have any in another; `None` when one went away since its parent was
/// read.
async fn read_batch(
    client: &zk::Client,
    batch: &[(String, String)],
    start: Option<&str>,
) -> std::result::Result<Option<(Option<zk::Stat>, Vec<(Node, Vec<String>)>)>, zk::Error> {
    let shape = || zk::Error::UnexpectedError("a multi read answered out of shape".into());
    let mut reader = client.new_multi_reader();
    if let Some(start) = start {
        reader.add_get_data(start)?;
    }
    for (path, _) in batch {
        reader.add_get_data(path)?;
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
            _ => return Err(shape()),
        },
    };
    let mut read = Vec::with_capacity(batch.len());
    for (path, key) in batch {
        match results.next() {
            Some(zk::MultiReadResult::Data { data, stat }) => {
                let node = Node {
                    path: path.clone(),
                    key: key.clone(),
                    data,
                    stat,
                };
                read.push((node, Vec::new()));
            }
            Some(zk::MultiReadResult::Error {
                err: zk::Error::NoNode,
            }) => return Ok(None),
            Some(zk::MultiReadResult::Error { err }) => return Err(err),
            _ => return Err(shape()),
        }
    }
    // The children of the nodes that have some (a flat range has none).
    let parents: Vec<usize> = (0..read.len())
        .filter(|&i| read[i].0.stat.num_children > 0)
        .collect();
    if !parents.is_empty() {
        let mut reader = client.new_multi_reader();
        for &i in &parents {
            reader.add_get_children(&read[i].0.path)?;
        }
        let answers = reader.commit().await?;
        if answers.len() != parents.len() {
            return Err(shape());
        }
        for (i, answer) in parents.into_iter().zip(answers) {
            match answer {
                zk::MultiReadResult::Children { children } => read[i].1 = children,
                zk::MultiReadResult::Error {
                    err: zk::Error::NoNode,
                } => return Ok(None),
                zk::MultiReadResult::Error { err } => return Err(err),
                _ => return Err(shape()),
            }
        }
    }
    Ok(Some((start_stat, read)))
}
