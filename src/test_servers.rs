//! For the library's own tests that need a real server.

/// The server's address from `var` (set by `scripts/servers env`), or
/// `None` (said) when the tests run without it; a panic when
/// `KV_REQUIRE_SERVERS` says the server must be there.
pub(crate) fn server(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(addr) if !addr.is_empty() => Some(addr),
        _ if std::env::var_os("KV_REQUIRE_SERVERS").is_some() => {
            panic!("{var} is not set but KV_REQUIRE_SERVERS is: the server is missing")
        }
        _ => {
            eprintln!("SKIPPED: {var} is not set (see scripts/servers)");
            None
        }
    }
}
