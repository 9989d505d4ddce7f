//! `Store::txn` on ZooKeeper: one `multi`.
//!
//! The keys are read first; a check that fails there is a conflict at once.
//! Otherwise each check becomes ZooKeeper's own `check` of the node's data
//! version as read (an absent key's node is made a marker first, so that
//! "absent" is a version too), each lock check a `check` that the holder's
//! contender node exists, and each write a `setData` (or `create`) at the
//! version read. A check that fails in the `multi` changed since the read:
//! a conflict; a write that fails there raced another: the txn reads again.

use std::collections::HashMap;

use zookeeper_client as zk;

use super::nodes::{
    PARENT, RACE_ROUNDS, acls, check_value, create, is_marker, make_parents, raced, version_of,
};
use super::paths::node_path;
use super::put::{add_remake, may_have_ttl};
use super::session::{Repeat, Session};
use crate::txn::TxnWrite;
use crate::{Error, Result, Txn, TxnResult};

/// The most checks (lock checks included) and writes a txn takes.
const MAX_CHECKS: usize = 128;
const MAX_WRITES: usize = 128;

/// A node as read: its data and stat, `None` when missing.
type Read = Option<(Vec<u8>, zk::Stat)>;

pub(super) async fn apply(session: &Session, root: &str, txn: Txn) -> Result<TxnResult> {
    txn.validate("ZooKeeper", MAX_CHECKS, MAX_WRITES)?;
    for write in &txn.writes {
        if let TxnWrite::Put { key, value } = write {
            check_value(key, &node_path(root, key), value)?;
        }
    }
    let size = request_size(root, &txn);
    if size > super::nodes::MAX_REQUEST {
        return Err(Error::InvalidArgument(format!(
            "a txn on ZooKeeper is one request of at most {} bytes (jute.maxbuffer); this one needs about {size}",
            super::nodes::MAX_REQUEST
        )));
    }
    for guard in &txn.guards {
        if !guard.session.starts_with(root) {
            return Err(Error::UnknownSession {
                session: guard.session.clone(),
            });
        }
    }
    let txn = &txn;
    session
        .run("zookeeper txn", Repeat::Unsafe, |client| async move {
            // A failed check is read once more behind a sync (below).
            let mut synced = !session.fresh_reads();
            for round in 1..=RACE_ROUNDS {
                match attempt(&client, session, root, txn).await? {
                    Some(TxnResult::Conflict { .. }) if !synced && round < RACE_ROUNDS => {
                        client.sync(root).await?;
                        synced = true;
                    }
                    Some(result) => return Ok(result),
                    None => {}
                }
            }
            Err(raced(root))
        })
        .await
}

/// About how many bytes the txn's `multi` takes: every value and path, and
/// headers.
fn request_size(root: &str, txn: &Txn) -> usize {
    let mut size = 2048;
    for write in &txn.writes {
        if let TxnWrite::Put { value, .. } = write {
            size += value.len();
        }
        size += 4 * node_path(root, write.key()).len() + 64;
    }
    for check in &txn.checks {
        size += node_path(root, &check.key).len() + 64;
    }
    for guard in &txn.guards {
        size += guard.session.len() + 64;
    }
    size
}

/// Reads `paths` in `multi` reads.
async fn read_all(
    client: &zk::Client,
    paths: &[String],
) -> std::result::Result<HashMap<String, Read>, zk::Error> {
    let mut read = HashMap::new();
    for batch in paths.chunks(50) {
        let mut reader = client.new_multi_reader();
        for path in batch {
            reader.add_get_data(path)?;
        }
        let answers = reader.commit().await?;
        if answers.len() != batch.len() {
            return Err(zk::Error::UnexpectedError(
                "a multi read answered short".into(),
            ));
        }
        for (path, answer) in batch.iter().zip(answers) {
            let node = match answer {
                zk::MultiReadResult::Data { data, stat } => Some((data, stat)),
                zk::MultiReadResult::Error {
                    err: zk::Error::NoNode,
                } => None,
                zk::MultiReadResult::Error { err } => return Err(err),
                _ => {
                    return Err(zk::Error::UnexpectedError(
                        "a data read answered children".into(),
                    ));
                }
            };
            read.insert(path.clone(), node);
        }
    }
    Ok(read)
}

/// One round; `None` when it raced a write and must read again.
async fn attempt(
    client: &zk::Client,
    session: &Session,
    root: &str,
    txn: &Txn,
) -> std::result::Result<Option<TxnResult>, zk::Error> {
    let path = |key: &str| node_path(root, key);
    let mut paths: Vec<String> = txn.checks.iter().map(|c| path(&c.key)).collect();
    paths.extend(txn.guards.iter().map(|g| g.session.clone()));
    paths.extend(txn.writes.iter().map(|w| path(w.key())));
    paths.sort();
    paths.dedup();
    let read = read_all(client, &paths).await?;
    let node = |path: &str| read.get(path).and_then(Option::as_ref);
    let key_version = |key: &str| {
        node(&path(key))
            .filter(|(data, _)| !is_marker(data))
            .and_then(|(_, stat)| version_of(stat).ok())
    };
    let failed = txn.failed_checks(key_version, |guard| node(&guard.session).is_some());
    if !failed.is_empty() {
        return Ok(Some(TxnResult::Conflict { keys: failed }));
    }
    // "Absent" needs a node to check: a marker.
    let plain = zk::CreateMode::Persistent.with_acls(acls(session));
    let mut made = false;
    for check in txn.checks.iter().filter(|c| c.version.is_none()) {
        let at = path(&check.key);
        if node(&at).is_none() {
            match create(client, &at, PARENT, &plain, &plain).await {
                Ok(_) | Err(zk::Error::NodeExists) => made = true,
                Err(error) => return Err(error),
            }
        }
    }
    if made {
        return Ok(None);
    }
    let size = request_size(root, txn);
    let mut contenders_size = 0;
    let mut writer = client.new_multi_writer();
    let mut checked = Vec::new();
    for check in &txn.checks {
        let at = path(&check.key);
        let (_, stat) = node(&at).ok_or_else(|| raced(&at))?;
        writer.add_check_version(&at, stat.version)?;
        checked.push(check.key.clone());
    }
    for guard in &txn.guards {
        writer.add_check_version(&guard.session, -1)?;
        checked.push(guard.key.clone());
    }
    for write in &txn.writes {
        let at = path(write.key());
        match (write, node(&at)) {
            (TxnWrite::Put { value, .. }, Some((_, stat))) if may_have_ttl(stat) => {
                add_remake(&mut writer, &at, value, &plain, false, Some(stat.version))?;
            }
            (TxnWrite::Put { value, .. }, Some((_, stat))) => {
                writer.add_set_data(&at, value, Some(stat.version))?
            }
            (TxnWrite::Put { value, .. }, None) => {
                make_parents(client, &at, &plain).await?;
                writer.add_create(&at, value, &plain)?;
            }
            (TxnWrite::Delete { .. }, Some((data, stat))) if !is_marker(data) => {
                writer.add_set_data(&at, PARENT, Some(stat.version))?;
                // Deleting a lock's key breaks the lock.
                for contender in super::contenders::contenders_below(client, &at, stat).await? {
                    contenders_size += contender.len() + 64;
                    writer.add_delete(&contender, None)?;
                }
            }
            (TxnWrite::Delete { .. }, _) => {}
        }
    }
    if contenders_size + size > super::nodes::MAX_REQUEST {
        return Err(zk::Error::BadArguments(
            &"the txn, with the lock contenders its deletes delete, does not fit in one ZooKeeper request (jute.maxbuffer)",
        ));
    }
    let results = match writer.commit().await {
        Ok(results) => results,
        Err(zk::MultiWriteError::OperationFailed { index, .. }) => {
            return Ok(checked.get(index).map(|key| TxnResult::Conflict {
                keys: vec![key.clone()],
            }));
        }
        Err(zk::MultiWriteError::RequestFailed { source }) => return Err(source),
    };
    let mut version = 0u64;
    for result in &results {
        match result {
            zk::MultiWriteResult::SetData { stat } => {
                version = version.max(u64::try_from(stat.mzxid).unwrap_or(0))
            }
            // A create's stat may come back empty (ZOOKEEPER-4026): read it.
            zk::MultiWriteResult::Create { path, stat } if stat.mzxid <= 0 => {
                if let Some(stat) = client.check_stat(path).await? {
                    version = version.max(u64::try_from(stat.czxid).unwrap_or(0));
                }
            }
            zk::MultiWriteResult::Create { stat, .. } => {
                version = version.max(u64::try_from(stat.mzxid).unwrap_or(0))
            }
            _ => {}
        }
    }
    if version == 0 {
        // Nothing written (checks alone, deletes of absent keys): the
        // newest version read.
        version = read
            .values()
            .flatten()
            .filter_map(|(_, stat)| u64::try_from(stat.mzxid.max(stat.pzxid)).ok())
            .max()
            .unwrap_or(1);
    }
    Ok(Some(TxnResult::Committed { version }))
}
