//! `kv`: a command line for any kvmesh URL.
//!
//! ```text
//! cargo run --example kv -- --url etcd://127.0.0.1:2379 put config/replicas 3
//! KV_URL=consul://127.0.0.1:8500 cargo run --example kv -- watch --prefix config/
//! cargo run --example kv -- lock jobs/nightly -- ./run-nightly.sh
//! ```
//! Errors are one line on stderr and a non-zero exit.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use futures::StreamExt;
use kvmesh::discovery::Discovery;
use kvmesh::{Bytes, KvEvent, PutOptions, Store, WatchOptions};

#[derive(Parser)]
#[command(
    name = "kv",
    about = "Read, write, watch and lock keys in Consul, etcd or memory://"
)]
struct Cli {
    /// The store: memory://, consul://host:port, etcd://host:port (with ?options).
    #[arg(long, env = "KV_URL")]
    url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Prints a key's value.
    Get { key: String },
    /// Writes a value.
    Put {
        key: String,
        value: String,
        /// Delete the key this long after the write (e.g. 30s, 5m).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
    },
    /// Deletes a key, or every key under a prefix.
    Rm {
        key: String,
        /// Treat KEY as a prefix.
        #[arg(long)]
        prefix: bool,
    },
    /// Lists the keys under a prefix with their values.
    Ls {
        #[arg(default_value = "")]
        prefix: String,
    },
    /// Prints changes as they come, until Ctrl-C.
    Watch {
        /// The key to watch.
        key: Option<String>,
        /// Watch every key under this prefix instead.
        #[arg(long, conflicts_with = "key")]
        prefix: Option<String>,
    },
    /// Runs a command while holding a lock (like `consul lock`).
    Lock {
        key: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Lists a service's registered nodes (kvmesh::discovery).
    Members { service: String },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 30s or 5m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("{text:?} is not a duration like 500ms, 30s or 5m")),
    }
}

fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

async fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let store = kvmesh::connect(&cli.url).await?;
    match cli.command {
        Command::Get { key } => match store.get(&key).await? {
            Some(pair) => println!("{}", text(&pair.value)),
            None => return Err(format!("{key}: not found").into()),
        },
        Command::Put { key, value, ttl } => {
            let options = ttl.map(PutOptions::ttl).unwrap_or_default();
            store.put_with(&key, Bytes::from(value), options).await?;
        }
        Command::Rm { key, prefix: true } => store.delete_range(&key).await?,
        Command::Rm { key, prefix: false } => store.delete(&key).await?,
        Command::Ls { prefix } => {
            for pair in store.get_range(&prefix).await? {
                println!("{}\t{}", pair.key, text(&pair.value));
            }
        }
        Command::Watch { key, prefix } => watch(&*store, key, prefix).await?,
        Command::Lock { key, command } => return lock(&*store, &key, &command).await,
        Command::Members { service } => {
            for node in Discovery::new(store).members(&service).await? {
                let meta = node
                    .meta
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",");
                println!("{}\t{}\t{meta}", node.id, node.address);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn watch(
    store: &dyn Store,
    key: Option<String>,
    prefix: Option<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut events = match (key, prefix) {
        (_, Some(prefix)) => store.watch_range(&prefix, WatchOptions::default()).await?,
        (Some(key), None) => store.watch(&key, WatchOptions::default()).await?,
        (None, None) => return Err("watch needs a KEY or --prefix P".into()),
    };
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        match event {
            Some(Ok(KvEvent::Put(pair))) => {
                println!("PUT\t{}\t{}\t{}", pair.key, text(&pair.value), pair.version)
            }
            Some(Ok(KvEvent::Delete { key, version })) => println!("DELETE\t{key}\t\t{version}"),
            Some(Err(error)) => return Err(error.into()),
            None => return Ok(()),
        }
    }
}

async fn lock(
    store: &dyn Store,
    key: &str,
    command: &[String],
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (program, args) = command
        .split_first()
        .ok_or("lock needs a command after --")?;
    let holder = Bytes::from(format!("kv lock (pid {})", std::process::id()));
    let lock = store.acquire(key, holder).await?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let status = tokio::select! {
        status = child.wait() => status?,
        _ = lock.lost() => {
            let _ = child.kill().await;
            return Err(format!("lost the lock on {key}; stopped {program}").into());
        }
    };
    lock.release().await?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("kv: {error}");
            ExitCode::FAILURE
        }
    }
}
