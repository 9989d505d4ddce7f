//! The one check of a TTL, made before any backend writes anything.

use std::time::Duration;

use crate::{Error, Result};

/// The longest TTL the stores that keep deadlines themselves take (memory,
/// file, Redis, etcd): ten years. Longer ones are refused, not rounded, so
/// that no backend meets a deadline it cannot represent halfway through a
/// write.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Refuses a TTL of zero, or one longer than `max` (the backend's limit).
pub(crate) fn check_ttl(ttl: Duration, max: Duration) -> Result<()> {
    if ttl.is_zero() {
        return Err(Error::InvalidArgument(
            "a TTL must be longer than zero".into(),
        ));
    }
    if ttl > max {
        return Err(Error::InvalidArgument(format!(
            "a TTL of {ttl:?} is longer than this store takes ({max:?}); for a key that \
             never expires, put it without a TTL"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_too_long_are_refused() {
        assert!(check_ttl(Duration::ZERO, MAX_TTL).is_err());
        assert!(check_ttl(Duration::from_secs(u64::MAX / 4), MAX_TTL).is_err());
        assert!(check_ttl(MAX_TTL, MAX_TTL).is_ok());
        assert!(check_ttl(Duration::from_millis(1), MAX_TTL).is_ok());
    }
}
