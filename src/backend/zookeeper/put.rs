//! Writes: plain keys are persistent nodes; a TTL key is a ZooKeeper TTL
//! node, which the server deletes once its TTL passes without a write and
//! it has no children (within its container check interval).
//!
//! A node's type and TTL are fixed when it is made, and ZooKeeper shows
//! neither to a client (a stat's `ephemeralOwner` is 0 for a TTL node). So:
//! - a TTL node is made with a mark a stat shows: in the same `multi`, a
//!   child `%ttl` is made and deleted, which leaves `cversion > 0` and no
//!   children;
//! - a plain write that lands on a node with that mark makes the node anew
//!   as a plain one (a plain node that had children, none now, looks the
//!   same and is made anew once), unless another write came between its
//!   value and the remake: that write decides what the node is (writing
//!   the value again would undo it);
//! - a TTL write makes the node anew each time, with its TTL.
//!
//! Making a node anew is one `multi`: delete at the version read, create.
//! Its data version starts again, so a compare-and-swap on a TTL key is
//! exact except against a TTL write (or the expiry) of that key between
//! its read and its write. A node with children cannot be deleted: a TTL
//! write on it is refused, a plain write takes the value.

use std::time::Duration;

use zookeeper_client as zk;

use super::nodes::{RACE_ROUNDS, acls, create, make_parents, raced};
use super::session::{Repeat, Session};
use crate::{Error, Result};

/// The longest TTL a node holds: 40 bits of milliseconds.
pub(crate) const MAX_TTL: Duration = Duration::from_millis(0xFF_FFFF_FFFF);

/// The child whose making and deleting marks a TTL node.
const MARK: &str = "%ttl";

/// Whether the node may be a TTL node (see the module's doc).
pub(crate) fn may_have_ttl(stat: &zk::Stat) -> bool {
    // A TTL node that had children since shows only `cversion > 0`, as a
    // plain node that had children does: both are made anew (once: a node
    // made anew has `cversion` 0).
    stat.cversion > 0 && stat.num_children == 0
}

/// One `multi` that makes `path` anew with `value`: deletes the node at
/// `replacing` (its data version) if given, creates it with `options`, and
/// marks it when it has a TTL.
async fn remake(
    client: &zk::Client,
    path: &str,
    value: &[u8],
    options: &zk::CreateOptions<'_>,
    ttl: bool,
    replacing: Option<i32>,
) -> std::result::Result<(), zk::MultiWriteError> {
    let mut writer = client.new_multi_writer();
    add_remake(&mut writer, path, value, options, ttl, replacing)?;
    writer.commit().await.map(drop)
}

/// Adds [`remake`]'s operations to `writer`.
pub(crate) fn add_remake(
    writer: &mut zk::MultiWriter<'_>,
    path: &str,
    value: &[u8],
    options: &zk::CreateOptions<'_>,
    ttl: bool,
    replacing: Option<i32>,
) -> std::result::Result<(), zk::Error> {
    if let Some(version) = replacing {
        writer.add_delete(path, Some(version))?;
    }
    writer.add_create(path, value, options)?;
    if ttl {
        let child = format!("{path}/{MARK}");
        let plain = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        writer.add_create(&child, b"", &plain)?;
        writer.add_delete(&child, None)?;
    }
    Ok(())
}

/// Writes `value` at `path` as a plain key.
pub(crate) async fn put(session: &Session, path: &str, value: &[u8]) -> Result<()> {
    let options = zk::CreateMode::Persistent.with_acls(acls(session));
    session
        .run("zookeeper put", Repeat::Unsafe, |client| {
            let options = options.clone();
            async move {
                for _ in 0..RACE_ROUNDS {
                    let stat = match client.set_data(path, value, None).await {
                        Ok(stat) => stat,
                        Err(zk::Error::NoNode) => {
                            match create(&client, path, value, &options, &options).await {
                                Ok(_) => return Ok(()),
                                Err(zk::Error::NodeExists) => continue,
                                Err(error) => return Err(error),
                            }
                        }
                        Err(error) => return Err(error),
                    };
                    if !may_have_ttl(&stat) {
                        return Ok(());
                    }
                    // The value is written; the node is made anew as a plain
                    // one unless it changed since: then a later write
                    // decides what it is (writing the value again would
                    // undo that write).
                    return match remake(&client, path, value, &options, false, Some(stat.version))
                        .await
                    {
                        Ok(()) | Err(zk::MultiWriteError::OperationFailed { .. }) => Ok(()),
                        Err(zk::MultiWriteError::RequestFailed { source }) => Err(source),
                    };
                }
                Err(raced(path))
            }
        })
        .await
}

/// Writes `value` at `path` as a key deleted once `ttl` passes without a
/// write.
pub(crate) async fn put_ttl(
    session: &Session,
    path: &str,
    value: &[u8],
    ttl: Duration,
) -> Result<()> {
    let parents = zk::CreateMode::Persistent.with_acls(acls(session));
    let node = parents.clone().with_ttl(ttl);
    let answer = session
        .run("zookeeper put", Repeat::Unsafe, |client| {
            let (parents, node) = (parents.clone(), node.clone());
            async move {
                for _ in 0..RACE_ROUNDS {
                    let replacing = match client.check_stat(path).await? {
                        None => None,
                        Some(stat) if stat.num_children > 0 => return Ok(false),
                        Some(stat) => Some(stat.version),
                    };
                    match remake(&client, path, value, &node, true, replacing).await {
                        Ok(()) => return Ok(true),
                        Err(zk::MultiWriteError::OperationFailed {
                            index: 0,
                            source: zk::Error::NoNode,
                        }) if replacing.is_none() => {
                            make_parents(&client, path, &parents).await?;
                        }
                        Err(zk::MultiWriteError::OperationFailed {
                            source: zk::Error::Unimplemented,
                            ..
                        }) => {
                            return Err(zk::Error::Unimplemented);
                        }
                        Err(zk::MultiWriteError::OperationFailed { .. }) => {}
                        Err(zk::MultiWriteError::RequestFailed { source }) => return Err(source),
                    }
                }
                Err(raced(path))
            }
        })
        .await;
    match answer {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::Unsupported {
            backend: "zookeeper",
            what: format!(
                "a TTL on {path}: it has nodes below it (keys, or deleted keys not yet \
                 collected), and ZooKeeper removes a TTL node only once it has none"
            ),
        }),
        // A server without extended types refuses TTL nodes.
        Err(Error::Unsupported { .. }) => Err(Error::Unsupported {
            backend: "zookeeper",
            what: "TTL keys: this ZooKeeper server refuses TTL nodes; start it with \
                   zookeeper.extendedTypesEnabled=true"
                .into(),
        }),
        Err(error) => Err(error),
    }
}
