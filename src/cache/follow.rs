//! Reading the prefix as of one moment, and the task that follows it: one
//! watch, its ready events applied in batches; after a watch error a new
//! read and watch, the difference applied; a probe while quiet, so that
//! the copy says when it cannot reach the store.

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use super::PROBE_INTERVAL;
use super::copy::Copy;
use crate::backoff::Backoff;
use crate::{Error, KvEvent, KvPair, Result, Store, Watch, WatchOptions};

/// The most events applied as one batch.
const MAX_BATCH: usize = 1024;

/// Every key under `prefix` as of one moment, and a watch that yields every
/// change after it.
///
/// The stores of this crate say how many of a new watch's first events are
/// its initial state, which is then the copy. For another `Store`, the
/// prefix is read first and watched after the highest version read.
pub(super) async fn read(store: &Arc<dyn Store>, prefix: &str) -> Result<(Vec<KvPair>, Watch)> {
    let mut watch = store.watch_range(prefix, WatchOptions::default()).await?;
    if let Some(initial) = watch.initial_state() {
        let mut pairs = Vec::with_capacity(initial);
        for _ in 0..initial {
            match watch.next().await {
                Some(Ok(KvEvent::Put(pair))) => pairs.push(pair),
                Some(Ok(KvEvent::Delete { key, .. })) => {
                    return Err(Error::malformed(format!(
                        "a watch's initial state held a deletion of {key:?}"
                    )));
                }
                Some(Err(error)) => return Err(error),
                None => {
                    return Err(Error::malformed("a watch ended within its initial state"));
                }
            }
        }
        return Ok((pairs, watch));
    }
    drop(watch);
    let pairs = store.get_range(prefix).await?;
    let after = pairs.iter().map(|p| p.version).max().unwrap_or(0);
    let watch = store
        .watch_range(prefix, WatchOptions::after(after))
        .await?;
    Ok((pairs, watch))
}

/// Follows the prefix until `stop`, keeping `copy` current.
pub(super) async fn follow(
    store: Arc<dyn Store>,
    copy: Arc<Copy>,
    mut watch: Watch,
    stop: CancellationToken,
) {
    let probe_key = if copy.prefix.is_empty() {
        "kvmesh/cache-probe".to_owned()
    } else {
        copy.prefix.clone()
    };
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return,
            next = tokio::time::timeout(PROBE_INTERVAL, watch.next()) => next,
        };
        match next {
            Ok(Some(Ok(event))) => {
                let mut batch = vec![event];
                while batch.len() < MAX_BATCH {
                    match watch.next().now_or_never() {
                        Some(Some(Ok(event))) => batch.push(event),
                        // An error or the end is met again on the next turn.
                        _ => break,
                    }
                }
                copy.set_stale(false);
                copy.apply(batch);
            }
            Ok(Some(Err(error))) => {
                tracing::warn!(%error, prefix = copy.prefix, "a cache's watch failed; reading the prefix again");
                match reopen(&store, &copy, &stop).await {
                    Some(fresh) => watch = fresh,
                    None => return,
                }
            }
            Ok(None) => {
                // Ended by `cancel_watch_range` on the store: follow on.
                match reopen(&store, &copy, &stop).await {
                    Some(fresh) => watch = fresh,
                    None => return,
                }
            }
            Err(_quiet) => {
                let answered = tokio::select! {
                    _ = stop.cancelled() => return,
                    answered = store.exists(&probe_key) => answered,
                };
                if let Err(error) = &answered {
                    tracing::warn!(%error, prefix = copy.prefix, "a cache cannot reach its store; serving the last copy");
                }
                copy.set_stale(answered.is_err());
            }
        }
    }
}

/// Reads the prefix again (with backoff, until it works or `stop`) and
/// applies the difference; returns the new watch. An error that retrying
/// cannot cure ends the copy.
async fn reopen(
    store: &Arc<dyn Store>,
    copy: &Arc<Copy>,
    stop: &CancellationToken,
) -> Option<Watch> {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let attempt = tokio::select! {
            _ = stop.cancelled() => return None,
            attempt = read(store, &copy.prefix) => attempt,
        };
        match attempt {
            Ok((pairs, watch)) => {
                copy.set_stale(false);
                copy.resync(pairs);
                return Some(watch);
            }
            Err(error) if error.is_retryable() || matches!(error, Error::OutcomeUnknown { .. }) => {
                copy.set_stale(true);
                tracing::warn!(%error, prefix = copy.prefix, "a cache cannot read its prefix; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, prefix = copy.prefix, "a cache stopped following its prefix");
                copy.set_stale(true);
                copy.end(error);
                return None;
            }
        }
    }
}
