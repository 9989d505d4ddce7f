//! TTL deadlines as stored on disk: wall-clock milliseconds since the Unix
//! epoch, since a monotonic `Instant` means nothing to the next process.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `at` as wall-clock milliseconds, rounded up so a key never expires early.
pub(crate) fn to_unix_ms(at: Instant) -> u64 {
    let left = at.saturating_duration_since(Instant::now());
    let left_ms = u64::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
    now_unix_ms().saturating_add(left_ms)
}

/// The instant of a stored deadline: now, or earlier, when it has passed.
pub(crate) fn from_unix_ms(ms: u64) -> Instant {
    let now = Instant::now();
    let left = ms.saturating_sub(now_unix_ms());
    now.checked_add(Duration::from_millis(left)).unwrap_or(now)
}
