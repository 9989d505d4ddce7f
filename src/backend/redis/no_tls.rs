//! A build without the `tls` feature: `rediss://` is refused before this
//! is reached (`Opened::new`), and no error is a TLS failure.

use crate::{Result, TlsConfig};

pub(super) fn client(url: String, _tls: &TlsConfig) -> Result<redis::RedisResult<redis::Client>> {
    Ok(redis::Client::open(url))
}

pub(super) fn failure(_e: &redis::RedisError) -> Option<String> {
    None
}
