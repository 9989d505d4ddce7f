//! Capped exponential backoff with jitter, for every retry loop, and the
//! rule by which a waiting `acquire` rides out an outage.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Delays of `base · 2^n`, capped at `max`, each scaled by a random factor
/// in [0.5, 1) so that many clients retrying together spread out.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            failures: 0,
        }
    }

    /// The delay before the next try; each call doubles the next one.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let exponential = self.base.saturating_mul(1u32 << self.failures.min(16));
        self.failures = self.failures.saturating_add(1);
        exponential.min(self.max).mul_f64(0.5 + random_unit() / 2.0)
    }

    /// After a success: the next failure starts from `base` again.
    #[cfg_attr(not(any(feature = "consul", feature = "etcd")), allow(dead_code))]
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A random number in [0, 1), from the standard library's per-process random
/// hash keys (no cryptographic quality needed for jitter or for spreading
/// contenders).
pub(crate) fn random_unit() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// A random 28-hex-digit token (lock owners, epoch marks): distinct for
/// every call, with no cryptographic quality needed.
#[cfg(any(feature = "redis", feature = "zookeeper"))]
pub(crate) fn random_token() -> String {
    let a = (random_unit() * (1u64 << 53) as f64) as u64;
    let b = (random_unit() * (1u64 << 53) as f64) as u64;
    format!("{a:014x}{b:014x}")
}

/// Lets a waiting `acquire` ride out an outage. Once the store has been
/// reached ([`WaitThroughOutages::reached`]), a transient failure (timeout,
/// unreachable store, a waiting session or lease that lapsed) starts the
/// attempt over after a backoff instead of failing the call: waiting for a
/// lock already means waiting for an unknown time. A failure before the store
/// was ever reached is returned at once, so a call made while the store is
/// down fails within its timeout.
#[derive(Debug)]
pub(crate) struct WaitThroughOutages {
    reached: bool,
    backoff: Backoff,
}

impl WaitThroughOutages {
    pub(crate) fn new() -> Self {
        WaitThroughOutages {
            reached: false,
            backoff: Backoff::new(
                std::time::Duration::from_millis(100),
                std::time::Duration::from_secs(5),
            ),
        }
    }

    /// The store answered: from now on transient failures are waited out.
    pub(crate) fn reached(&mut self) {
        self.reached = true;
    }

    /// After a failed attempt: `Ok(())` once it is time to try again, or the
    /// error when it is not transient (or the store was never reached).
    pub(crate) async fn again(&mut self, error: crate::Error) -> crate::Result<()> {
        // A write whose outcome is unknown is transient here too: the next
        // try starts with a new session or lease, and one the lost write
        // may have left behind expires with its TTL.
        let transient = error.is_retryable()
            || matches!(
                error,
                crate::Error::LockLost { .. } | crate::Error::OutcomeUnknown { .. }
            );
        if !(self.reached && transient) {
            return Err(error);
        }
        let delay = self.backoff.next_delay();
        tracing::warn!(%error, ?delay, "waiting for a lock through a failure; trying again");
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let first = backoff.next_delay();
        assert!(first >= Duration::from_millis(50) && first < Duration::from_millis(100));
        for _ in 0..20 {
            assert!(backoff.next_delay() <= Duration::from_secs(1));
        }
        backoff.reset();
        assert!(backoff.next_delay() < Duration::from_millis(100));
    }
}
