//! The collector: removes marker nodes (deleted keys, emptied parents) that
//! have no children and were not written for [`IDLE`], in two steps: such a
//! marker is first written as [`DOOMED`] (at the version read), and removed
//! (at that version) only once it has been idle as such for [`IDLE`] again.
//! An operation that read a marker (a create-only write over a deleted
//! key's marker, say) and then writes at the version it read finds the
//! version moved by the first step; one that read a marked one can meet
//! another node at that version only if, in the moment between its read
//! and its write, the collector removed it and another client made the
//! key anew and wrote it to the same version.
//!
//! One collector at a time per root, across every process: it holds the
//! ephemeral node `<root>/%collector` while it works (a name no key
//! decodes to; a run whose session already holds it, after a run cut short,
//! takes it over), and a run is skipped when `<root>/%collected` says the
//! last one ended less than [`EVERY`] ago. ZooKeeper refuses to delete a
//! node with children, so a key written below a marker keeps it. Idle
//! times are the server's clock: the collector node's `ctime` against each
//! marker's `mtime`.

use std::sync::Arc;
use std::time::Duration;

use zookeeper_client as zk;

use super::nodes::{DOOMED, PARENT, acls, is_marker};
use super::session::{Repeat, Session};
use super::walk::walk;
use crate::Result;

/// How long a marker stays after its last write.
pub(crate) const IDLE: Duration = Duration::from_secs(600);
/// How often a store tries to collect.
pub(crate) const EVERY: Duration = Duration::from_secs(300);

/// Collects under `root` every [`EVERY`] while the session lives (the task
/// holds it weakly); the returned handle's drop does not stop it, the
/// store aborts it.
pub(crate) fn start(session: &Arc<Session>, root: &str) -> tokio::task::JoinHandle<()> {
    let (session, root) = (Arc::downgrade(session), root.to_owned());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(EVERY).await;
            let Some(session) = session.upgrade() else {
                return;
            };
            if let Err(error) = collect(&session, &root, IDLE, EVERY).await {
                tracing::debug!(%error, root, "zookeeper: collecting markers failed; next time again");
            }
        }
    })
}

/// Runs one collection under `root` unless another runs or one ended less
/// than `every` ago; removes markers idle for `idle`. Returns how many it
/// removed (`None`: skipped).
pub(crate) async fn collect(
    session: &Session,
    root: &str,
    idle: Duration,
    every: Duration,
) -> Result<Option<usize>> {
    let holder = format!("{root}/%collector");
    let done = format!("{root}/%collected");
    let (idle, every) = (millis(idle), millis(every));
    session
        .run("zookeeper collect", Repeat::Safe, |client| {
            let (holder, done) = (holder.clone(), done.clone());
            async move {
                let ephemeral = zk::CreateMode::Ephemeral.with_acls(acls(session));
                let persistent = zk::CreateMode::Persistent.with_acls(acls(session));
                let now = match client.create(&holder, b"", &ephemeral).await {
                    Ok((stat, _)) => stat.ctime,
                    Err(zk::Error::NodeExists) => {
                        // Ours, left by a run cut short: take it over.
                        match client.check_stat(&holder).await? {
                            Some(stat) if stat.ephemeral_owner == client.session_id().0 => {
                                client.set_data(&holder, b"", None).await?.mtime
                            }
                            _ => return Ok(None),
                        }
                    }
                    Err(zk::Error::NoNode) => return Ok(None),
                    Err(error) => return Err(error),
                };
                let outcome = run(&client, root, (&done, &persistent), now, idle, every).await;
                let _ = client.delete(&holder, None).await;
                outcome
            }
        })
        .await
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

async fn run(
    client: &zk::Client,
    root: &str,
    (done, persistent): (&str, &zk::CreateOptions<'_>),
    now: i64,
    idle: i64,
    every: i64,
) -> std::result::Result<Option<usize>, zk::Error> {
    if let Some(stat) = client.check_stat(done).await?
        && now.saturating_sub(stat.mtime) < every
    {
        return Ok(None);
    }
    let Some(mut walk) = walk(client, root, "").await? else {
        return Ok(None);
    };
    // Children first: a parent emptied by this run goes in the next.
    walk.nodes
        .sort_by_key(|node| std::cmp::Reverse(node.path.matches('/').count()));
    let mut removed = 0;
    for node in &walk.nodes {
        let idle_for = now.saturating_sub(node.stat.mtime);
        // Ephemeral nodes (lock contenders) go with their session, never here.
        let ephemeral = node.stat.ephemeral_owner != 0;
        if !is_marker(&node.data) || node.stat.num_children > 0 || ephemeral || idle_for < idle {
            continue;
        }
        let removing = if node.data == PARENT {
            client
                .set_data(&node.path, DOOMED, Some(node.stat.version))
                .await
                .map(drop)
        } else {
            client.delete(&node.path, Some(node.stat.version)).await
        };
        match removing {
            Ok(()) if node.data == DOOMED => removed += 1,
            Ok(()) => {}
            Err(zk::Error::BadVersion | zk::Error::NotEmpty | zk::Error::NoNode) => {}
            Err(error) => return Err(error),
        }
    }
    match client.set_data(done, b"", None).await {
        Err(zk::Error::NoNode) => match client.create(done, b"", persistent).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(error) => return Err(error),
        },
        Ok(_) => {}
        Err(error) => return Err(error),
    }
    Ok(Some(removed))
}
