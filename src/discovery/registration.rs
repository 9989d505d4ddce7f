//! [`Registration`]: one node kept registered by a background task, and
//! the claims that keep a node id registered once per process.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{OwnedMutexGuard, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Node;
use crate::{Error, PutOptions, Result, Store};

/// The node ids a `Discovery` (and its clones) keeps registered, by key.
#[derive(Debug, Clone, Default)]
pub(super) struct Claims(Arc<Mutex<HashMap<String, Slot>>>);

#[derive(Debug, Default)]
struct Slot {
    /// A live `Registration` holds the key.
    live: bool,
    /// Held by a registration's task until it has removed its node, so that
    /// a registration made just after a drop is not undone by that removal.
    removal: Arc<tokio::sync::Mutex<()>>,
}

impl Claims {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        // Every change is one field write: still valid after a panic.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims `key` for a new registration: `None` while a live one holds
    /// it; waits for the removal of one that was dropped. Cancel-safe.
    pub(super) async fn claim(&self, key: &str) -> Option<Claim> {
        let removal = {
            let mut slots = self.lock();
            let slot = slots.entry(key.to_owned()).or_default();
            if slot.live {
                return None;
            }
            slot.live = true;
            slot.removal.clone()
        };
        let live = LiveMark {
            claims: self.clone(),
            key: key.to_owned(),
        };
        let removal = removal.lock_owned().await;
        Some(Claim { live, removal })
    }
}

/// Marks its key live until dropped.
#[derive(Debug)]
struct LiveMark {
    claims: Claims,
    key: String,
}

impl Drop for LiveMark {
    fn drop(&mut self) {
        if let Some(slot) = self.claims.lock().get_mut(&self.key) {
            slot.live = false;
        }
    }
}

/// A key claimed for one registration.
#[derive(Debug)]
pub(super) struct Claim {
    live: LiveMark,
    removal: OwnedMutexGuard<()>,
}

/// What the refresh task last learned.
#[derive(Debug, Clone)]
struct Status {
    registered: bool,
    last_error: Option<Error>,
}

/// A live registration, refreshed every `ttl / 3` by a background task.
///
/// - Dropped or [`Registration::deregister`]ed: refreshing stops and the node
///   is removed (on drop, in the background; should that fail, it expires
///   with its TTL).
/// - A refresh that fails is tried again at the next period, and its error
///   is [`Registration::last_error`]. Once a whole TTL has passed since the
///   last refresh that succeeded was sent (a refresh still unanswered then,
///   as in a partition, does not count), the node may have expired:
///   [`Registration::is_registered`] turns false and
///   [`Registration::lost`] resolves. The next refresh that succeeds
///   registers the node again.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvmesh::Result<()> {
/// use std::time::Duration;
/// use kvmesh::discovery::{Discovery, Node};
///
/// let discovery = Discovery::new(kvmesh::connect("memory://").await?);
/// let registration = discovery
///     .register("web", Node::new("web-1", "10.0.0.1:8080"), Duration::from_secs(30))
///     .await?;
/// tokio::select! {
///     _ = registration.lost() => eprintln!("deregistered: {:?}", registration.last_error()),
///     _ = tokio::time::sleep(Duration::from_millis(10)) => {} // serve requests here
/// }
/// assert!(registration.is_registered());
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping a Registration deregisters the node"]
pub struct Registration {
    key: String,
    node: Node,
    stop: CancellationToken,
    status: watch::Receiver<Status>,
    refresher: Option<tokio::task::JoinHandle<Result<()>>>,
    _live: LiveMark,
}

impl Registration {
    /// Writes the node once (its error is the caller's), then keeps it.
    /// The node counts as listed for a TTL from when its last write that
    /// succeeded was *sent* (the store received it later).
    pub(super) async fn start(
        store: Arc<dyn Store>,
        claim: Claim,
        node: Node,
        value: Bytes,
        ttl: Duration,
    ) -> Result<Registration> {
        let key = claim.live.key.clone();
        let written = Instant::now();
        store
            .put_with(&key, value.clone(), PutOptions::ttl(ttl))
            .await?;
        let stop = CancellationToken::new();
        let (status, receiver) = watch::channel(Status {
            registered: true,
            last_error: None,
        });
        let keeper = Keeper {
            store,
            key: key.clone(),
            value,
            ttl,
            expires: written + ttl,
            status,
            _removal: claim.removal,
        };
        let refresher = tokio::spawn(keeper.run(stop.clone()));
        Ok(Registration {
            key,
            node,
            stop,
            status: receiver,
            refresher: Some(refresher),
            _live: claim.live,
        })
    }

    /// The registered node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// False once no refresh has succeeded for a whole TTL (the node may
    /// have expired), true again after the next refresh that succeeds.
    pub fn is_registered(&self) -> bool {
        self.status.borrow().registered
    }

    /// Resolves when [`Registration::is_registered`] turns false (at once if
    /// it is): the node may no longer be listed.
    pub async fn lost(&self) {
        let mut status = self.status.clone();
        // An error means the task has ended: the node is gone as well.
        let _ = status.wait_for(|s| !s.registered).await;
    }

    /// The error of the last refresh, if it failed.
    pub fn last_error(&self) -> Option<Error> {
        self.status.borrow().last_error.clone()
    }

    /// Stops refreshing and removes the node; returns once it is removed.
    pub async fn deregister(mut self) -> Result<()> {
        self.stop.cancel();
        match self.refresher.take() {
            // The refresh task deletes the key after its last write.
            Some(task) => task
                .await
                .map_err(|e| Error::InvalidArgument(format!("the refresh task failed: {e}")))?,
            None => Ok(()),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // The refresh task removes the entry when stopped.
        self.stop.cancel();
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("key", &self.key)
            .field("node", &self.node)
            .field("registered", &self.is_registered())
            .finish()
    }
}

/// The refresh task's state.
struct Keeper {
    store: Arc<dyn Store>,
    key: String,
    value: Bytes,
    ttl: Duration,
    /// The node is listed at least until then (its last write's TTL).
    expires: Instant,
    status: watch::Sender<Status>,
    _removal: OwnedMutexGuard<()>,
}

impl Keeper {
    /// Refreshes until `stop`, then removes the node.
    async fn run(mut self, stop: CancellationToken) -> Result<()> {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(self.ttl / 3) => {}
            }
            let sent = Instant::now();
            let (store, key, value) = (self.store.clone(), self.key.clone(), self.value.clone());
            let ttl = self.ttl;
            let write = async move { store.put_with(&key, value, PutOptions::ttl(ttl)).await };
            tokio::pin!(write);
            // The node may be gone once its last write's TTL has passed,
            // whether or not this refresh has answered yet (a partition
            // leaves it hanging for the request timeout).
            // A refresh in flight is let finish (its request timeout bounds
            // it) even when stopped: abandoned, it could land after the
            // delete and list the node again for a TTL.
            let written = tokio::select! {
                written = &mut write => written,
                _ = tokio::time::sleep_until(self.expires) => {
                    self.mark_expired();
                    write.await
                }
            };
            self.record(sent, written);
        }
        let removed = self.store.delete(&self.key).await;
        if let Err(error) = &removed {
            let key = &self.key;
            tracing::warn!(%error, key, "removing a registration failed; it expires with its TTL");
        }
        removed
    }

    /// No refresh has succeeded within the last write's TTL.
    fn mark_expired(&self) {
        let key = &self.key;
        tracing::warn!(
            key,
            "no discovery refresh succeeded within the TTL; the node may be gone"
        );
        self.status
            .send_if_modified(|status| std::mem::replace(&mut status.registered, false));
    }

    fn record(&mut self, sent: Instant, written: Result<()>) {
        match written {
            Ok(()) => {
                self.expires = sent + self.ttl;
                self.status.send_if_modified(|status| {
                    let changed = !status.registered || status.last_error.is_some();
                    *status = Status {
                        registered: true,
                        last_error: None,
                    };
                    changed
                });
            }
            Err(error) => {
                let expired = Instant::now() >= self.expires;
                let key = &self.key;
                tracing::warn!(%error, key, expired, "refreshing a discovery registration failed; retrying");
                self.status.send_modify(|status| {
                    status.registered &= !expired;
                    status.last_error = Some(error);
                });
            }
        }
    }
}
