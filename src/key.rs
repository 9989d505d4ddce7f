//! Checks on keys and prefixes shared by every backend.

use crate::{Error, Result};

/// Refuses the empty key: it must never become a request for the whole keyspace.
pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid_key(key, "a key must not be empty"));
    }
    Ok(())
}

/// Refuses the empty prefix for destructive range calls.
pub(crate) fn check_delete_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Err(Error::invalid_key(
            prefix,
            "delete_range needs a non-empty prefix",
        ));
    }
    Ok(())
}
