//! The URL query options: which backend takes which, and their values
//! (durations, sizes, percent-encoded text).

use std::time::Duration;

use crate::{Backend, Config, Error, Result};

const TLS_OPTIONS: [&str; 4] = ["ca_file", "cert_file", "key_file", "tls_server_name"];

/// The options each backend uses; any other is refused, naming these.
pub(super) fn options_of(backend: Backend) -> Vec<&'static str> {
    let mut options = match backend {
        // `timeout` is the one option the API names for every backend;
        // the embedded stores make no requests, so it changes nothing there.
        Backend::Memory | Backend::File => return vec!["timeout", "history", "max_value_size"],
        Backend::Redis => vec!["timeout", "lock_ttl", "history", "namespace"],
        Backend::Consul => vec!["timeout", "lock_ttl", "stall_timeout", "token", "dc"],
        Backend::Etcd => vec!["timeout", "lock_ttl", "stall_timeout", "transport"],
        Backend::ZooKeeper => vec!["timeout", "lock_ttl", "reads"],
        // A backend added later takes what its own arm says.
        #[allow(unreachable_patterns)]
        _ => vec![],
    };
    options.extend(TLS_OPTIONS);
    options
}

/// Applies each `name=value` of a query string, refusing an option that
/// `backend` does not use.
pub(super) fn set_options(config: &mut Config, backend: Backend, query: &str) -> Result<()> {
    let takes = options_of(backend);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !takes.contains(&name) {
            let known = [
                Backend::Redis,
                Backend::Consul,
                Backend::Etcd,
                Backend::File,
                Backend::ZooKeeper,
            ]
            .into_iter()
            .any(|other| options_of(other).contains(&name));
            return Err(Error::InvalidArgument(format!(
                "{} option {name:?} for {}://: it takes {}",
                if known { "no" } else { "unknown" },
                backend.name(),
                takes.join(", ")
            )));
        }
        set_option(config, name, value)?;
    }
    Ok(())
}

/// Applies one `name=value` option from a URL query string.
fn set_option(config: &mut Config, name: &str, value: &str) -> Result<()> {
    match name {
        "timeout" => config.timeout = parse_duration(name, value)?,
        "lock_ttl" => config.lock_ttl = parse_duration(name, value)?,
        "stall_timeout" => config.stall_timeout = parse_duration(name, value)?,
        "token" => config.token = Some(percent_decode(name, value)?),
        "dc" => config.datacenter = Some(percent_decode(name, value)?),
        "namespace" => {
            let namespace = percent_decode(name, value)?;
            if namespace.is_empty() || namespace.contains(['{', '}']) {
                return Err(Error::InvalidArgument(
                    "namespace: a non-empty name without { or }".into(),
                ));
            }
            config.namespace = Some(namespace);
        }
        "ca_file" | "cert_file" | "key_file" | "tls_server_name" => {
            let Some(tls) = config.tls.as_mut() else {
                return Err(Error::InvalidArgument(format!(
                    "{name} needs TLS: use consul+https://, etcd+https:// or rediss://"
                )));
            };
            let value = percent_decode(name, value)?;
            match name {
                "ca_file" => tls.ca_file = Some(value.into()),
                "cert_file" => tls.cert_file = Some(value.into()),
                "key_file" => tls.key_file = Some(value.into()),
                _ => tls.server_name = Some(value),
            }
        }
        "max_value_size" => config.max_value_size = Some(parse_size(name, value)?),
        "transport" => {
            config.etcd_transport = match value {
                "http" => crate::EtcdTransport::Http,
                "grpc" => crate::EtcdTransport::Grpc,
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "transport: {value:?} is not http or grpc"
                    )));
                }
            }
        }
        "reads" => {
            config.zookeeper_reads = match value {
                "fresh" => crate::ZooKeeperReads::Fresh,
                "local" => crate::ZooKeeperReads::Local,
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "reads: {value:?} is not fresh or local"
                    )));
                }
            }
        }
        "history" => {
            config.history = value.parse().map_err(|_| {
                Error::InvalidArgument(format!("history: {value:?} is not a whole number"))
            })?
        }
        _ => return Err(Error::InvalidArgument(format!("unknown option {name:?}"))),
    }
    Ok(())
}

pub(super) fn percent_decode(name: &str, value: &str) -> Result<String> {
    percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|_| Error::InvalidArgument(format!("{name}: not valid percent-encoded UTF-8")))
}

/// Parses `250ms`, `5s`, `2m`, `1h` (a whole number and a unit).
pub(super) fn parse_duration(name: &str, text: &str) -> Result<Duration> {
    let invalid = || {
        Error::InvalidArgument(format!(
            "{name}: {text:?} is not a duration like 250ms, 5s, 2m or 1h"
        ))
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| invalid())?;
    let seconds = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(invalid)?,
        "h" => n.checked_mul(3600).ok_or_else(invalid)?,
        _ => return Err(invalid()),
    };
    Ok(Duration::from_secs(seconds))
}

/// A size in bytes: `524288`, `512KiB`, `1MiB`.
pub(super) fn parse_size(name: &str, text: &str) -> Result<usize> {
    let invalid = || {
        Error::InvalidArgument(format!(
            "{name}: {text:?} is not a size like 524288, 512KiB or 1MiB"
        ))
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: usize = number.parse().map_err(|_| invalid())?;
    let scale = match unit {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        _ => return Err(invalid()),
    };
    n.checked_mul(scale).ok_or_else(invalid)
}
