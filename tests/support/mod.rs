//! Helpers shared by the test binaries that talk to real servers.
#![allow(dead_code, unreachable_pub)]

/// Set by `./scripts/test`: a server variable that is missing fails the run
/// instead of skipping.
pub const REQUIRE_SERVERS: &str = "KV_REQUIRE_SERVERS";

/// The address in `var` (e.g. `KV_CONSUL_ADDR=127.0.0.1:18500`, printed by
/// `scripts/servers env`). Without it, a test is skipped and says so; under
/// `./scripts/test` it fails.
pub fn server_addr(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(addr) if !addr.is_empty() => Some(addr),
        _ if std::env::var_os(REQUIRE_SERVERS).is_some() => {
            panic!(
                "{var} is not set but {REQUIRE_SERVERS} is: the server is missing (see scripts/servers)"
            )
        }
        _ => {
            eprintln!(
                "SKIPPED {test}: {var} is not set (run ./scripts/test, or eval \"$(scripts/servers env)\")"
            );
            None
        }
    }
}
