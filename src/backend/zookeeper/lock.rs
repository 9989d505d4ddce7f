//! Locks: ZooKeeper's recipe, laid out as Apache Curator's
//! `InterProcessMutex` lays it out, so Curator services and kvmesh services
//! exclude each other on the same path.
//!
//! A lock on `key` is the key's node `P`: each contender makes an
//! ephemeral sequential child `P/_c_<uuid>-lock-<sequence>` (Curator's
//! protected name; its data a marker, so it is no key, which the holder
//! turns to [`HELD`]); the lowest sequence holds, and each waiter watches
//! only its predecessor (no herd). A try (`try_acquire`) gives up at once
//! before a holder, and gives its node back before it answers.
//! The holder then writes its value to `P`, so `get(key)` returns it.
//! The fencing token is the contender node's `czxid`, which grows with
//! every acquisition. The lock is lost when its node goes (released through
//! `Store::release`, its key deleted) or its connection or session is (the
//! server may expire the session soon after the client notices: it learns
//! first). A contender left by an acquire
//! that was dropped is deleted in the background.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use zookeeper_client as zk;

use super::contenders::{Contender, LOCK_NAME, sequence};
use super::nodes::{HELD, PARENT, acls, create};
use super::paths::node_path;
use super::session::{Session, failure};
use crate::lock::LockReleaser;
use crate::{Error, Lock, Result};

/// How long a try waits for contenders before it that hold nothing yet
/// (tries that will give up, a waiter about to hold).
const TRY_WAIT: Duration = Duration::from_secs(1);

/// The lock on `key`: `wait` false gives up at once when another holds
/// it; waiting rides out lost connections and expired sessions (a new
/// contender on the new session), with backoff.
pub(super) async fn lock(
    session: &Arc<Session>,
    root: &str,
    key: &str,
    value: &Bytes,
    wait: bool,
) -> Result<Option<Lock>> {
    let mut backoff =
        crate::backoff::Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    loop {
        match one_try(session, root, key, value, wait).await {
            Err(error)
                if wait && (error.is_retryable() || matches!(error, Error::LockLost { .. })) =>
            {
                tracing::debug!(%error, key, "zookeeper acquire: trying again");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            other => return other,
        }
    }
}

/// One contender's try.
async fn one_try(
    session: &Arc<Session>,
    root: &str,
    key: &str,
    value: &Bytes,
    wait: bool,
) -> Result<Option<Lock>> {
    let dir = node_path(root, key);
    let client = session.client().await?;
    // Watched from before the lock is held: a connection lost at any point
    // after this is seen.
    let mut states = client.state_watcher();
    let parents = zk::CreateMode::Persistent.with_acls(acls(session));
    let ephemeral = zk::CreateMode::EphemeralSequential.with_acls(acls(session));
    let fail = |error: zk::Error| failure("zookeeper acquire", error);
    // UUID-shaped, as Curator's protected names are (8-4-4-4-12 hex).
    let token = crate::backoff::random_token();
    let uuid = format!(
        "{}-{}-{}-{}-{}{}",
        &token[..8],
        &token[8..12],
        &token[12..16],
        &token[16..20],
        &token[20..28],
        &token[..4]
    );
    let mark = format!("_c_{uuid}");
    let prefix = format!("{dir}/{mark}{LOCK_NAME}");
    let mut contender = Contender {
        client: client.clone(),
        dir: dir.clone(),
        mark: mark.clone(),
        armed: true,
    };
    // The lock's node is made (as a parent, if it is no key yet) only when
    // it is missing.
    let (stat, seq) = create(&client, &prefix, PARENT, &ephemeral, &parents)
        .await
        .map_err(fail)?;
    let mine = format!("{prefix}{seq}");
    let try_until = tokio::time::Instant::now() + TRY_WAIT;
    let my_name = &mine[dir.len() + 1..];
    let my_sequence = sequence(my_name).unwrap_or(u64::MAX);
    loop {
        let mut children = client.list_children(&dir).await.map_err(fail)?;
        children.retain(|name| sequence(name).is_some());
        children.sort_by_key(|name| sequence(name));
        if !children.iter().any(|name| name == my_name) {
            if !wait {
                return Ok(None);
            }
            return Err(Error::LockLost {
                key: key.to_owned(),
            });
        }
        let Some(predecessor) = children
            .iter()
            .rfind(|name| sequence(name).is_some_and(|s| s < my_sequence))
        else {
            break;
        };
        let path = format!("{dir}/{predecessor}");
        if !wait {
            // A holder marks its node: then the answer is no, at once. A
            // node before ours that is not marked is a contender that will
            // hold or give up in a moment (another try): wait for it, a
            // little (a Curator holder never marks its node).
            let lowest = format!("{dir}/{}", children[0]);
            let held = match client.get_data(&lowest).await {
                Ok((data, _)) => data == HELD,
                Err(zk::Error::NoNode) => continue,
                Err(error) => return Err(fail(error)),
            };
            if held || tokio::time::Instant::now() >= try_until {
                // Given back now, so that it blocks no other try.
                if client.delete(&mine, None).await.is_ok() {
                    contender.armed = false;
                }
                return Ok(None);
            }
            let (found, watcher) = client.check_and_watch_stat(&path).await.map_err(fail)?;
            if found.is_some() {
                let _ = tokio::time::timeout_at(try_until, watcher.changed()).await;
            }
            continue;
        }
        let (found, watcher) = client.check_and_watch_stat(&path).await.map_err(fail)?;
        if found.is_some() {
            let event = watcher.changed().await;
            if event.event_type == zk::EventType::Session && event.session_state.is_terminated() {
                return Err(Error::LockLost {
                    key: key.to_owned(),
                });
            }
        }
    }
    // Held: mark the contender so (a try sees a holder at once) and write
    // the value where `get` reads it, in one step that fails if the
    // contender went meanwhile (`Store::release`, its key deleted: it holds
    // nothing then).
    let mut writer = client.new_multi_writer();
    writer.add_set_data(&mine, HELD, None).map_err(fail)?;
    writer.add_set_data(&dir, value, None).map_err(fail)?;
    let written = match writer.commit().await {
        Ok(results) => match results.last() {
            Some(zk::MultiWriteResult::SetData { stat }) => stat.version,
            _ => {
                return Err(fail(zk::Error::UnexpectedError(
                    "a multi answered out of shape".into(),
                )));
            }
        },
        Err(zk::MultiWriteError::OperationFailed { .. }) if !wait => return Ok(None),
        Err(zk::MultiWriteError::OperationFailed { .. }) => {
            return Err(Error::LockLost {
                key: key.to_owned(),
            });
        }
        Err(zk::MultiWriteError::RequestFailed { source }) => return Err(fail(source)),
    };
    if states.state() != zk::SessionState::SyncConnected {
        // The connection went meanwhile: the server may free it any moment.
        return Err(Error::LockLost {
            key: key.to_owned(),
        });
    }
    contender.armed = false;
    let lost = CancellationToken::new();
    tokio::spawn(watch_held(
        client.clone(),
        states,
        mine.clone(),
        lost.clone(),
    ));
    let releaser = Releaser {
        session: session.clone(),
        dir,
        contender: mine.clone(),
        written,
        lost: lost.clone(),
    };
    let token = u64::try_from(stat.czxid).unwrap_or(0);
    Ok(Some(Lock::new(
        key.to_owned(),
        mine,
        token,
        lost,
        Box::new(releaser),
    )))
}

/// Cancels `lost` when the contender node goes, the session ends or the
/// connection is lost.
async fn watch_held(
    client: zk::Client,
    mut states: zk::StateWatcher,
    node: String,
    lost: CancellationToken,
) {
    let gone = async {
        loop {
            match client.check_and_watch_stat(&node).await {
                Ok((None, _)) => return,
                Ok((Some(_), watcher)) => {
                    let event = watcher.changed().await;
                    if event.event_type == zk::EventType::NodeDeleted
                        || event.session_state.is_terminated()
                    {
                        return;
                    }
                }
                Err(
                    zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::AuthFailed,
                ) => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    };
    // Lost as soon as the connection is: the client notices only after up
    // to 2/3 of the session timeout without an answer, so the server may
    // expire the session (and free the lock) soon after (Curator's locks do
    // the same on SUSPENDED).
    let session_ends = async {
        loop {
            let state = states.changed().await;
            if state.is_terminated() || state == zk::SessionState::Disconnected {
                return;
            }
        }
    };
    tokio::select! {
        _ = lost.cancelled() => {}
        _ = gone => lost.cancel(),
        _ = session_ends => {
            lost.cancel();
            // Given up: its node goes once the client is back (or with the
            // session), so the lock does not stay taken by no one.
            let _ = client.delete(&node, None).await;
        }
    }
}

/// Gives a held lock up: the key's value (if still the one the holder
/// wrote) becomes the marker, then the contender node goes.
struct Releaser {
    session: Arc<Session>,
    dir: String,
    contender: String,
    written: i32,
    lost: CancellationToken,
}

impl Releaser {
    async fn run(self) -> Result<()> {
        self.lost.cancel();
        let fail = |error: zk::Error| failure("zookeeper release", error);
        let client = self.session.client().await?;
        // One step: the value goes only while it is still the one written.
        let mut writer = client.new_multi_writer();
        writer
            .add_set_data(&self.dir, PARENT, Some(self.written))
            .map_err(fail)?;
        writer.add_delete(&self.contender, None).map_err(fail)?;
        match writer.commit().await {
            Ok(_) => return Ok(()),
            Err(zk::MultiWriteError::RequestFailed { source }) => return Err(fail(source)),
            Err(zk::MultiWriteError::OperationFailed { .. }) => {}
        }
        // The value moved on (a new holder), or the contender is gone (lost:
        // a blip, an expired session, `Store::release`): each step alone.
        match client.set_data(&self.dir, PARENT, Some(self.written)).await {
            Ok(_) | Err(zk::Error::BadVersion | zk::Error::NoNode) => {}
            Err(error) => return Err(fail(error)),
        }
        match client.delete(&self.contender, None).await {
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(error) => Err(fail(error)),
        }
    }
}

impl LockReleaser for Releaser {
    fn release(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(self.run())
    }

    fn release_in_background(self: Box<Self>) {
        tokio::spawn(async move {
            if let Err(error) = self.run().await {
                tracing::debug!(%error, "zookeeper: a dropped lock's release failed; its node goes with the session");
            }
        });
    }
}
