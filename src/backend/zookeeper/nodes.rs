//! A key as a node: read, written, compared and deleted, with the parent
//! nodes a key needs.
//!
//! Every node under the root is a key, except those holding [`PARENT`]:
//! the parents kvmesh creates only to hold a key (`a` when only `a/b` was
//! written), and deleted keys. A delete writes [`PARENT`] instead of
//! removing the node, so
//! - a key's node is never made anew while kvmesh works on it: its data
//!   version only grows, and a compare-and-swap (read the node, then write
//!   at the data version read) cannot act on another node at the same
//!   version;
//! - a delete has a version of its own (the marker's `mzxid`), which a
//!   watch reports;
//! - a parent never has to be removed under a key being written below it.
//!
//! Markers idle for long are removed by the collector ([`super::collect`]).
//! A key's version is its node's `mzxid`: the zxid of its last write, which
//! orders every write of the ensemble.

use bytes::Bytes;
use zookeeper_client as zk;

use super::session::{Repeat, Session};
use crate::{Error, KvPair, Result};

/// The data of a parent node kvmesh created only to hold keys below it,
/// and of a deleted key.
pub(crate) const PARENT: &[u8] = b"kvmesh:parent\0";

/// The data of a marker the collector will remove ([`super::collect`]).
pub(crate) const DOOMED: &[u8] = b"kvmesh:parent\0collect";

/// The data of a lock contender node that holds the lock.
pub(crate) const HELD: &[u8] = b"kvmesh:parent\0held";

/// Whether the node is a deleted key's marker that dates the delete (a
/// parent made only to hold keys was never written: data version 0; the
/// collector's [`DOOMED`] write is not the delete).
pub(crate) fn is_deleted_key(data: &[u8], stat: &zk::Stat) -> bool {
    data == PARENT && stat.version > 0
}

/// Whether a node's data says it is no key (a parent, a deleted key).
pub(crate) fn is_marker(data: &[u8]) -> bool {
    data.starts_with(PARENT)
}

/// How many times a write goes round a race (a parent removed under it, a
/// node created or changed between two steps) before it gives up.
pub(crate) const RACE_ROUNDS: usize = 20;

/// The largest value kvmesh sends: ZooKeeper refuses a request past its
/// `jute.maxbuffer` (1 MiB by default), path and header included.
pub(crate) const MAX_VALUE: usize = 1024 * 1024 - 4096;

/// The ACL new nodes get: everyone, or with a digest identity only it.
pub(crate) fn acls(session: &Session) -> zk::Acls<'static> {
    if session.settings().digest.is_some() {
        zk::Acls::creator_all()
    } else {
        zk::Acls::anyone_all()
    }
}

/// The version of a node as a key's version.
pub(crate) fn version_of(stat: &zk::Stat) -> std::result::Result<u64, zk::Error> {
    u64::try_from(stat.mzxid)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| zk::Error::UnexpectedError(format!("a node's mzxid is {}", stat.mzxid)))
}

/// The pair a node's data stands for; `None` for a parent.
pub(crate) fn pair_of(
    key: &str,
    data: Vec<u8>,
    stat: &zk::Stat,
) -> std::result::Result<Option<KvPair>, zk::Error> {
    if is_marker(&data) {
        return Ok(None);
    }
    Ok(Some(KvPair {
        key: key.to_owned(),
        value: Bytes::from(data),
        version: version_of(stat)?,
    }))
}

/// What one request may hold (ZooKeeper's default `jute.maxbuffer`): a
/// server that gets more closes the connection, and with it every lock and
/// watch of the session's store.
pub(crate) const MAX_REQUEST: usize = 1024 * 1024;

/// The largest value a write of the node at `path` may carry: the request
/// holds the path up to 4 times (a node made anew), and headers.
pub(crate) fn value_limit(path: &str) -> usize {
    MAX_VALUE.min(MAX_REQUEST.saturating_sub(2048 + 4 * path.len()))
}

/// Refuses a value ZooKeeper would refuse (with the node's `path`, too
/// large for one request), or read as a parent.
pub(crate) fn check_value(key: &str, path: &str, value: &[u8]) -> Result<()> {
    let limit = value_limit(path);
    if value.len() > limit {
        return Err(Error::ValueTooLarge {
            key: key.to_owned(),
            size: value.len(),
            limit,
        });
    }
    if is_marker(value) {
        return Err(Error::InvalidArgument(format!(
            "the value written to {key:?} is the bytes kvmesh marks a parent node with on ZooKeeper ({PARENT:?})"
        )));
    }
    Ok(())
}

/// The node's data and stat; `None` when there is no node.
async fn read(
    client: &zk::Client,
    path: &str,
) -> std::result::Result<Option<(Vec<u8>, zk::Stat)>, zk::Error> {
    match client.get_data(path).await {
        Ok(found) => Ok(Some(found)),
        Err(zk::Error::NoNode) => Ok(None),
        Err(error) => Err(error),
    }
}

/// The path's parent; `None` for `/`.
fn parent_of(path: &str) -> Option<&str> {
    match path.rfind('/')? {
        0 if path.len() > 1 => Some("/"),
        0 => None,
        at => Some(&path[..at]),
    }
}

/// Creates `path` with `data`, and first every missing parent (as
/// [`PARENT`] nodes). `NodeExists` when `path` itself exists; a
/// sequential node's sequence with its stat.
pub(crate) async fn create(
    client: &zk::Client,
    path: &str,
    data: &[u8],
    options: &zk::CreateOptions<'_>,
    parents: &zk::CreateOptions<'_>,
) -> std::result::Result<(zk::Stat, zk::CreateSequence), zk::Error> {
    for _ in 0..RACE_ROUNDS {
        match client.create(path, data, options).await {
            Ok(made) => return Ok(made),
            Err(zk::Error::NoNode) => make_parents(client, path, parents).await?,
            Err(error) => return Err(error),
        }
    }
    Err(raced(path))
}

/// Makes the missing parents of `path` (as [`PARENT`] nodes), from the
/// highest missing one down.
pub(crate) async fn make_parents(
    client: &zk::Client,
    path: &str,
    parents: &zk::CreateOptions<'_>,
) -> std::result::Result<(), zk::Error> {
    let mut missing = Vec::new();
    let mut at = parent_of(path);
    while let Some(parent) = at.filter(|p| *p != "/") {
        match client.check_stat(parent).await? {
            Some(_) => break,
            None => missing.push(parent),
        }
        at = parent_of(parent);
    }
    for parent in missing.into_iter().rev() {
        match client.create(parent, PARENT, parents).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            // Removed again above it: the caller's next round starts over.
            Err(zk::Error::NoNode) => return Ok(()),
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

pub(crate) fn raced(path: &str) -> zk::Error {
    zk::Error::UnexpectedError(format!(
        "{path} kept changing under the write ({RACE_ROUNDS} rounds)"
    ))
}

/// The key at `path`, if it is one, as of after every write that ended
/// before the call (see [`fresh`]).
pub(crate) async fn get(session: &Session, key: &str, path: &str) -> Result<Option<KvPair>> {
    session
        .run("zookeeper get", Repeat::Safe, |client| async move {
            let read = read(&client, path);
            let found = fresh(session, &client, path, read).await?;
            found.map_or(Ok(None), |(data, stat)| pair_of(key, data, &stat))
        })
        .await
}

/// Runs `read` behind a `sync` of `path`: the server the session is on
/// may not have applied the latest writes yet (ZooKeeper reads are local),
/// and a session's requests run in order, so the read waits until that
/// server has caught up with the leader. Both go at once, one round trip.
/// `read` must be lazy (an `async` fn or block): it sends its requests when
/// first polled, after the sync; zookeeper-client's own calls send at once.
/// With `?reads=local`, just `read`.
pub(crate) async fn fresh<T>(
    session: &Session,
    client: &zk::Client,
    path: &str,
    read: impl Future<Output = std::result::Result<T, zk::Error>>,
) -> std::result::Result<T, zk::Error> {
    if !session.fresh_reads() {
        return read.await;
    }
    let synced = client.sync(path);
    let value = read.await;
    synced.await?;
    value
}

/// Deletes the key at `path`: its node holds [`PARENT`] from then on.
pub(crate) async fn delete(session: &Session, path: &str) -> Result<()> {
    session
        .run("zookeeper delete", Repeat::Unsafe, |client| async move {
            for _ in 0..RACE_ROUNDS {
                let Some((data, stat)) = read(&client, path).await? else {
                    return Ok(());
                };
                if is_marker(&data) {
                    return Ok(());
                }
                match mark_deleted(&client, path, &stat).await {
                    Ok(()) | Err(zk::Error::NoNode) => return Ok(()),
                    Err(zk::Error::BadVersion) => {}
                    Err(error) => return Err(error),
                }
            }
            Err(raced(path))
        })
        .await
}

/// Writes the marker over the key at `path` (at the data version of
/// `stat`) and, in the same `multi`, deletes the lock contenders below it:
/// deleting a lock's key breaks the lock. `BadVersion` when the key moved.
async fn mark_deleted(
    client: &zk::Client,
    path: &str,
    stat: &zk::Stat,
) -> std::result::Result<(), zk::Error> {
    let contenders = super::contenders::contenders_below(client, path, stat).await?;
    if contenders.is_empty() {
        return client
            .set_data(path, PARENT, Some(stat.version))
            .await
            .map(drop);
    }
    let mut writer = client.new_multi_writer();
    writer.add_set_data(path, PARENT, Some(stat.version))?;
    for contender in &contenders {
        writer.add_delete(contender, None)?;
    }
    match writer.commit().await {
        Ok(_) => Ok(()),
        Err(zk::MultiWriteError::OperationFailed { index: 0, source }) => Err(source),
        // A contender went meanwhile: the caller reads again.
        Err(zk::MultiWriteError::OperationFailed { .. }) => Err(zk::Error::BadVersion),
        Err(zk::MultiWriteError::RequestFailed { source }) => Err(source),
    }
}

/// Creates the key at `path` only if there is none (a parent is no key).
pub(crate) async fn create_only(session: &Session, path: &str, value: &[u8]) -> Result<bool> {
    let options = zk::CreateMode::Persistent.with_acls(acls(session));
    session
        .run("zookeeper atomic_put", Repeat::Unsafe, |client| {
            let options = options.clone();
            async move {
                for _ in 0..RACE_ROUNDS {
                    match create(&client, path, value, &options, &options).await {
                        Ok(_) => return Ok(true),
                        Err(zk::Error::NodeExists) => {}
                        Err(error) => return Err(error),
                    }
                    let Some((data, stat)) = read(&client, path).await? else {
                        continue;
                    };
                    if !is_marker(&data) {
                        return Ok(false);
                    }
                    match client.set_data(path, value, Some(stat.version)).await {
                        Ok(_) => return Ok(true),
                        Err(zk::Error::BadVersion | zk::Error::NoNode) => {}
                        Err(error) => return Err(error),
                    }
                }
                Err(raced(path))
            }
        })
        .await
}

/// Writes `value` at `path` only while the key's version is `version`.
pub(crate) async fn swap(
    session: &Session,
    path: &str,
    value: &[u8],
    version: u64,
) -> Result<bool> {
    session
        .run(
            "zookeeper atomic_put",
            Repeat::Unsafe,
            |client| async move {
                let Some(stat) = current(session, &client, path, version).await? else {
                    return Ok(false);
                };
                match client.set_data(path, value, Some(stat.version)).await {
                    Ok(_) => Ok(true),
                    Err(zk::Error::BadVersion | zk::Error::NoNode) => Ok(false),
                    Err(error) => Err(error),
                }
            },
        )
        .await
}

/// Deletes the key at `path` only while its version is `version`.
pub(crate) async fn delete_if(session: &Session, path: &str, version: u64) -> Result<bool> {
    session
        .run(
            "zookeeper atomic_delete",
            Repeat::Unsafe,
            |client| async move {
                for _ in 0..RACE_ROUNDS {
                    let Some(stat) = current(session, &client, path, version).await? else {
                        return Ok(false);
                    };
                    match mark_deleted(&client, path, &stat).await {
                        Ok(()) => return Ok(true),
                        // The key moved, or a contender went: read again.
                        Err(zk::Error::BadVersion) => {}
                        Err(zk::Error::NoNode) => return Ok(false),
                        Err(error) => return Err(error),
                    }
                }
                Err(raced(path))
            },
        )
        .await
}

/// The node's stat when it is a key at `version`. A "no" is read again
/// behind a sync ([`fresh`]): the server the session is on may not have
/// the caller's version yet (learnt from another session); only the
/// leader's state may say no.
async fn current(
    session: &Session,
    client: &zk::Client,
    path: &str,
    version: u64,
) -> std::result::Result<Option<zk::Stat>, zk::Error> {
    let at_version = |found: Option<(Vec<u8>, zk::Stat)>| match found {
        Some((data, stat)) if !is_marker(&data) && version_of(&stat)? == version => Ok(Some(stat)),
        _ => Ok(None),
    };
    let found = at_version(read(client, path).await?)?;
    if found.is_some() || !session.fresh_reads() {
        return Ok(found);
    }
    at_version(fresh(session, client, path, read(client, path)).await?)
}
