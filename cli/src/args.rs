//! The command line: what `kv --help` shows.

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Read, write, watch and lock keys in Consul, etcd, Redis, a file store or memory://.
#[derive(Debug, Parser)]
#[command(
    name = "kv",
    version,
    after_help = "Examples:
  kv put config/replicas 3               # no --url, no KV_URL: a file store (kv where)
  export KV_URL=etcd://127.0.0.1:2379    # a server: shared between processes
  kv put config/replicas 3
  kv get config/replicas
  kv ls config/ --output json
  kv lock jobs/nightly -- ./run-nightly.sh
  kv completions bash > ~/.local/share/bash-completion/completions/kv"
)]
pub(crate) struct Cli {
    /// The store: file:///path/store.redb, memory://, consul://host:port,
    /// etcd://host:port, redis://host:port, with ?options (see the kvmesh
    /// docs). Default: $KV_URL, else a file store in your data directory
    /// (`kv where` prints it).
    #[arg(long, env = "KV_URL", global = true, hide_env_values = true)]
    pub(crate) url: Option<String>,
    /// How long to wait for a file store that another process has open (a
    /// file store serves one process at a time).
    #[arg(long, global = true, value_parser = parse_duration, default_value = "5s")]
    pub(crate) wait: Duration,
    /// How to print results: text for people, json for scripts (one JSON
    /// value per result; `watch` prints one JSON object per line).
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    pub(crate) output: Output,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// Values as they are; lists as `key<TAB>value` lines.
    Text,
    /// JSON: `{"key", "value", "version"}` objects (`value_base64` for a
    /// value that is not UTF-8).
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Prints a key's value (exit 1 when the key does not exist).
    #[command(after_help = "Example:\n  kv get config/replicas")]
    Get { key: String },
    /// Writes a value.
    #[command(after_help = "Examples:\n  kv put config/replicas 3\n  \
                            kv put nodes/web-1 10.0.0.1:80 --ttl 30s\n  \
                            kv put certs/ca - < ca.pem")]
    Put {
        key: String,
        /// The value; `-` reads it from standard input (any bytes, any size).
        value: String,
        /// Delete the key this long after the write (e.g. 30s, 5m).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
    },
    /// Deletes a key, or every key under a prefix.
    #[command(after_help = "Examples:\n  kv rm config/replicas\n  kv rm --prefix config/")]
    Rm {
        key: String,
        /// Treat KEY as a prefix: every key under it.
        #[arg(long)]
        prefix: bool,
    },
    /// Lists the keys under a prefix with their values.
    #[command(after_help = "Examples:\n  kv ls config/\n  kv ls --output json")]
    Ls {
        #[arg(default_value = "")]
        prefix: String,
    },
    /// Prints changes as they come (current state first), until Ctrl-C,
    /// `--count` changes or `--timeout`.
    #[command(after_help = "Examples:\n  kv watch config/replicas\n  \
                            kv watch --prefix config/ --output json\n  \
                            kv watch jobs/done --count 1 --timeout 30s")]
    Watch {
        /// The key to watch.
        key: String,
        /// Treat KEY as a prefix: every key under it.
        #[arg(long)]
        prefix: bool,
        /// Stop after this many events (the current state counts).
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this long: exit 0, or 1 if `--count` events did not
        /// come by then.
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<Duration>,
    },
    /// Runs a command while holding a lock (like `consul lock`); exits with
    /// the command's code, and stops it if the lock is lost.
    #[command(after_help = "Example:\n  kv lock jobs/nightly -- ./run-nightly.sh --full")]
    Lock {
        key: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Lists a service's registered nodes (kvmesh::discovery).
    #[command(after_help = "Examples:\n  kv members web\n  kv members web --root apps/discovery/")]
    Members {
        service: String,
        /// The discovery root the service is registered under.
        #[arg(long, default_value = kvmesh::discovery::DEFAULT_ROOT)]
        root: String,
    },
    /// Prints the store kv uses: the URL, and for a file store its path.
    #[command(after_help = "Example:\n  kv where")]
    Where,
    /// Prints a shell completion script.
    #[command(
        after_help = "Examples:\n  kv completions bash > ~/.local/share/bash-completion/completions/kv\n  \
                            kv completions zsh > ~/.zfunc/_kv\n  \
                            kv completions fish > ~/.config/fish/completions/kv.fish"
    )]
    Completions { shell: clap_complete::Shell },
}

impl Command {
    /// True for the commands whose effect a `memory://` store forgets at exit.
    pub(crate) fn writes(&self) -> bool {
        matches!(
            self,
            Command::Put { .. } | Command::Rm { .. } | Command::Lock { .. }
        )
    }
}

/// Durations as store URLs take them: a whole number and a unit (`ms`,
/// `s`, `m`, `h`); a bare number is refused, as in a URL.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("{text:?} is not a duration like 500ms, 30s or 5m (a unit is needed)");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| invalid())?;
    let seconds = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    };
    seconds.map(Duration::from_secs).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5 days").is_err());
        assert!(
            parse_duration("2").is_err(),
            "a unit is needed, as in a URL"
        );
        assert!(parse_duration("99999999999999999999h").is_err());
    }
}
