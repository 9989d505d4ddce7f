//! Capped exponential backoff with jitter, for every retry loop.

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
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A random number in [0, 1), from the standard library's per-process random
/// hash keys (no cryptographic quality needed for jitter).
fn random_unit() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
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
