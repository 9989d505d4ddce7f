//! The conformance suite: every rule of the `Store` contract, written once
//! against `Arc<dyn Store>`. A backend runs all of it with one line:
//!
//! ```ignore
//! conformance::suite!(factory = my_backend_ctx, test = tokio::test);
//! ```
//!
//! where `my_backend_ctx(case: &str) -> impl Future<Output = Option<Ctx>>`
//! returns `None` (after printing why) when the backend's server is not
//! configured, so that the case is reported as skipped.
#![allow(dead_code, unreachable_pub)]

pub mod cache;
pub mod guarded;
pub mod kv;
pub mod lock;
pub mod recipes;
pub mod semaphore;
pub mod ttl;
pub mod txn;
pub mod watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use kvmesh::{Bytes, KvEvent, Store, TxnResult, Watch};

/// What one case runs against.
pub struct Ctx {
    pub store: Arc<dyn Store>,
    /// A second handle on the same store: a separate connection for network
    /// backends, a clone for the in-process one.
    pub other: Arc<dyn Store>,
    /// A key prefix no other case uses, so cases can run in parallel on one server.
    pub prefix: String,
    /// How the backend differs where the contract lets it.
    pub traits: BackendTraits,
}

/// The contract's allowed differences between backends.
#[derive(Debug, Clone, Copy)]
pub struct BackendTraits {
    /// Consul's blocking queries deliver the latest state, not every change.
    pub coalesces_changes: bool,
    /// The shortest TTL the backend honours.
    pub min_ttl: Duration,
    /// How late after its TTL a key may still exist.
    pub ttl_slack: Duration,
    /// The most writes a txn may have (`None`: no limit).
    pub txn_limit: Option<usize>,
    /// How long a released lock may take to be free for others (0 in process).
    pub release_lag: Duration,
}

impl BackendTraits {
    pub const MEMORY: BackendTraits = BackendTraits {
        coalesces_changes: false,
        min_ttl: Duration::from_millis(100),
        ttl_slack: Duration::from_millis(1),
        txn_limit: None,
        release_lag: Duration::ZERO,
    };
}

impl Ctx {
    pub fn new(store: Arc<dyn Store>, case: &str, traits: BackendTraits) -> Ctx {
        Ctx {
            other: store.clone(),
            store,
            prefix: unique_prefix(case),
            traits,
        }
    }

    /// Uses `other` as the second handle.
    pub fn with_other(mut self, other: Arc<dyn Store>) -> Ctx {
        self.other = other;
        self
    }

    /// A key under this case's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }
}

/// `kvtest/<case>/<unique>/`: unique across processes and runs.
pub fn unique_prefix(case: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("kvtest/{case}/{}-{nanos}-{n}/", std::process::id())
}

/// How long one case may take in all.
pub const CASE_DEADLINE: Duration = Duration::from_secs(120);

/// How long a case waits for an event that must come.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(20);

/// The next event of a watch; panics if the watch ends, errs or stays silent.
pub async fn next_event(watch: &mut Watch) -> KvEvent {
    match tokio::time::timeout(EVENT_DEADLINE, watch.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no event within {EVENT_DEADLINE:?}"),
    }
}

/// Asserts that the watch yields nothing for `quiet`.
pub async fn assert_quiet(watch: &mut Watch, quiet: Duration) {
    if let Ok(item) = tokio::time::timeout(quiet, watch.next()).await {
        panic!("expected silence, got {item:?}");
    }
}

/// Asserts that the watch has ended (returns `None`) promptly.
pub async fn assert_ended(watch: &mut Watch) {
    match tokio::time::timeout(Duration::from_millis(500), watch.next()).await {
        Ok(None) => {}
        other => panic!("expected the watch to end, got {other:?}"),
    }
}

/// Reads events until `done` says the accumulated state is reached; for
/// backends that coalesce, intermediate states may be skipped.
pub async fn events_until(
    watch: &mut Watch,
    mut done: impl FnMut(&[KvEvent]) -> bool,
) -> Vec<KvEvent> {
    let mut events = Vec::new();
    while !done(&events) {
        events.push(next_event(watch).await);
    }
    events
}

/// Polls `try_acquire` on `store` until it succeeds within the backend's
/// release lag.
pub async fn try_acquire_soon(store: &Arc<dyn Store>, ctx: &Ctx, key: &str) -> kvmesh::Lock {
    let deadline = tokio::time::Instant::now() + ctx.traits.release_lag + Duration::from_secs(10);
    loop {
        if let Some(lock) = store.try_acquire(key, Bytes::from("next")).await.unwrap() {
            return lock;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key:?} never became free"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The version of a txn that must commit.
pub fn committed(result: TxnResult) -> u64 {
    match result {
        TxnResult::Committed { version } => version,
        other => panic!("expected a commit, got {other:?}"),
    }
}

/// The keys of a txn that must conflict.
pub fn conflict(result: TxnResult) -> Vec<String> {
    match result {
        TxnResult::Conflict { keys } => keys,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// Generates one test per conformance case for a backend.
macro_rules! suite {
    (factory = $factory:path, test = $test:meta) => {
        $crate::conformance::suite!(@cases $factory, $test, [
            kv::put_get_and_versions,
            kv::missing_keys,
            kv::empty_key_is_invalid_everywhere,
            kv::awkward_keys_round_trip,
            kv::doubtful_keys_round_trip_or_are_refused,
            kv::binary_empty_and_large_values,
            kv::range_is_a_plain_string_prefix,
            kv::delete_range_deletes_only_the_prefix,
            kv::cas_create_swap_and_stale,
            kv::atomic_delete_cases,
            kv::cas_counter_loses_no_update,
            kv::ttl_key_expires,
            kv::plain_put_makes_a_ttl_key_permanent,
            kv::concurrent_ttl_writes_of_one_key_keep_it,
            watch::key_watch_initial_state_then_changes,
            watch::watch_on_a_missing_key_reports_its_creation,
            watch::after_yields_only_later_changes,
            watch::range_watch_reports_exactly_what_changed,
            watch::events_come_in_version_order,
            watch::cancel_watch_ends_only_that_key,
            watch::cancel_watch_range_ends_only_that_prefix,
            watch::ttl_expiry_is_a_delete_event,
            watch::a_watch_ahead_of_the_store_holds_back_no_other,
            lock::locks_exclude_contending_tasks,
            lock::waiter_wakes_after_release,
            lock::acquire_is_cancel_safe,
            lock::release_by_session_id,
            lock::holder_value_is_readable,
            lock::deleting_the_key_loses_the_lock,
            lock::dropping_a_lock_releases_it,
            recipes::discovery_registers_refreshes_and_leaves,
            recipes::discovery_membership_stream,
            recipes::election_has_one_leader_at_a_time,
            semaphore::semaphore_never_exceeds_its_limit,
            semaphore::semaphore_holders_try_and_drop,
            txn::all_or_nothing_with_conflicts_named,
            txn::moves_under_contention_keep_the_sum,
            txn::a_txn_is_one_version_on_a_range_watch,
            txn::limits_and_bad_input,
            guarded::only_the_holder_writes,
            guarded::a_lock_released_elsewhere_guards_nothing,
            guarded::a_lock_check_combines_with_version_checks,
            guarded::a_resigned_leader_cannot_write,
            guarded::a_deleted_lock_key_guards_nothing,
            cache::cache_opens_on_existing_keys,
            cache::cache_converges_under_concurrent_writers,
            cache::cache_changes_carry_the_previous_values,
            cache::cache_holds_only_its_prefix,
            cache::cache_clones_share_one_copy,
            cache::discovery_members_from_a_cache,
            ttl::an_impossible_ttl_writes_nothing,
            ttl::a_ttl_write_takes_over_another_handles_ttl_key,
        ]);
    };
    (@cases $factory:path, $test:meta, [$($module:ident :: $case:ident),* $(,)?]) => {
        $(
            #[$test]
            async fn $case() {
                if let Some(ctx) = $factory(stringify!($case)).await {
                    let case = $crate::conformance::$module::$case(ctx);
                    // A broken backend must fail a case, never hang the run.
                    tokio::time::timeout($crate::conformance::CASE_DEADLINE, case)
                        .await
                        .expect("the case did not finish within its deadline");
                }
            }
        )*
    };
}
pub(crate) use suite;
