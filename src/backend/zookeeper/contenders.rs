//! Lock contender nodes: Curator's protected names
//! (`_c_<uuid>-lock-<sequence>`), the guard that deletes a try's contender
//! unless it became the lock, the contenders below a key (what deleting a
//! lock's key deletes too), `Store::release` and the lock's holder.

use std::time::Duration;

use zookeeper_client as zk;

use super::nodes::PARENT;
use super::paths::node_path;
use super::session::{Session, failure};
use crate::{Error, Result};

/// What names a contender node: Curator sorts contenders by what follows.
pub(super) const LOCK_NAME: &str = "-lock-";

/// The contender a try makes, found by its uuid (Curator's protection):
/// armed before the create is sent, so a try that is dropped, or whose
/// create's answer was lost, deletes what it may have made (retrying until
/// it is gone, or the session that owns it is).
pub(super) struct Contender {
    pub(super) client: zk::Client,
    pub(super) dir: String,
    /// `_c_<uuid>-`: the start of its name.
    pub(super) mark: String,
    pub(super) armed: bool,
}

impl Drop for Contender {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (client, dir, mark) = (self.client.clone(), self.dir.clone(), self.mark.clone());
        tokio::spawn(async move {
            let mut backoff =
                crate::backoff::Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
            for _ in 0..30 {
                match client.list_children(&dir).await {
                    Ok(children) => {
                        let mut gone = true;
                        for name in children.iter().filter(|name| name.starts_with(&mark)) {
                            match client.delete(&format!("{dir}/{name}"), None).await {
                                Ok(()) | Err(zk::Error::NoNode) => {}
                                Err(_) => gone = false,
                            }
                        }
                        if gone {
                            return;
                        }
                    }
                    // Its session ended: the node went with it.
                    Err(
                        zk::Error::NoNode | zk::Error::SessionExpired | zk::Error::ClientClosed,
                    ) => return,
                    Err(_) => {}
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        });
    }
}

/// The sequence of a contender's name, `_c_<uuid>-lock-<sequence>`
/// (Curator's protected name); `None` for any other name.
pub(super) fn sequence(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("_c_")?;
    let at = rest.rfind(LOCK_NAME)?;
    let digits = &rest[at + LOCK_NAME.len()..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The lock contender nodes directly below `path` (ephemeral, named as
/// contenders): what deleting a lock's key deletes too.
pub(super) async fn contenders_below(
    client: &zk::Client,
    path: &str,
    stat: &zk::Stat,
) -> std::result::Result<Vec<String>, zk::Error> {
    if stat.num_children == 0 {
        return Ok(Vec::new());
    }
    let children = match client.list_children(path).await {
        Ok(children) => children,
        Err(zk::Error::NoNode) => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut contenders = Vec::new();
    for name in children.iter().filter(|name| is_contender_name(name)) {
        let child = format!("{path}/{name}");
        if let Some(stat) = client.check_stat(&child).await?
            && stat.ephemeral_owner != 0
        {
            contenders.push(child);
        }
    }
    Ok(contenders)
}

/// Whether `name` is a contender's name (Curator's protected or plain).
pub(super) fn is_contender_name(name: &str) -> bool {
    sequence(name).is_some()
}

/// `Store::release`: gives up the lock whose contender node is `session`.
pub(super) async fn release(session: &Session, root: &str, contender: &str) -> Result<()> {
    let unknown = || Error::UnknownSession {
        session: contender.to_owned(),
    };
    let Some((dir, name)) = contender.rsplit_once('/') else {
        return Err(unknown());
    };
    let under_root = dir
        .strip_prefix(root)
        .is_some_and(|rest| rest.starts_with('/'));
    if !under_root || sequence(name).is_none() {
        return Err(unknown());
    }
    let fail = |error: zk::Error| failure("zookeeper release", error);
    let client = session.client().await?;
    for _ in 0..super::nodes::RACE_ROUNDS {
        let mut children = client.list_children(dir).await.map_err(|e| match e {
            zk::Error::NoNode => unknown(),
            other => fail(other),
        })?;
        if !children.iter().any(|c| c == name) {
            return Err(unknown());
        }
        children.retain(|name| sequence(name).is_some());
        children.sort_by_key(|name| sequence(name));
        let mut writer = client.new_multi_writer();
        if children.first().is_some_and(|first| first == name) {
            // The holder's value goes with it, in the same step.
            let data_version = client
                .check_stat(dir)
                .await
                .map_err(fail)?
                .map(|s| s.version);
            if let Some(version) = data_version {
                writer
                    .add_set_data(dir, PARENT, Some(version))
                    .map_err(fail)?;
            }
        }
        writer.add_delete(contender, None).map_err(fail)?;
        match writer.commit().await {
            Ok(_) => return Ok(()),
            Err(zk::MultiWriteError::RequestFailed { source }) => return Err(fail(source)),
            Err(zk::MultiWriteError::OperationFailed { .. }) => {}
        }
    }
    Err(fail(super::nodes::raced(contender)))
}

/// The holder of the lock on `key`: the key's pair while a contender holds
/// it, `None` when none does.
pub(super) async fn holder(
    session: &Session,
    root: &str,
    key: &str,
) -> Result<Option<crate::KvPair>> {
    let dir = node_path(root, key);
    let client = session.client().await?;
    let list = async { client.list_children(&dir).await };
    let children = match super::nodes::fresh(session, &client, &dir, list).await {
        Ok(children) => children,
        Err(zk::Error::NoNode) => return Ok(None),
        Err(error) => return Err(failure("zookeeper lock_holder", error)),
    };
    if !children.iter().any(|name| sequence(name).is_some()) {
        return Ok(None);
    }
    super::nodes::get(session, key, &dir).await
}
