//! `kv`: read, write, watch and lock keys in any store kvmesh opens, from
//! the shell. Install with `cargo install --path cli`; `kv --help` shows
//! every command with an example. Errors are one line on stderr and a
//! non-zero exit.

mod args;
mod print;
mod store;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use futures::StreamExt;
use kvmesh::discovery::Discovery;
use kvmesh::{Bytes, PutOptions, Store, WatchOptions};

use crate::args::{Cli, Command, Output};

type Failure = Box<dyn std::error::Error>;

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "kv", &mut std::io::stdout());
        return Ok(ExitCode::SUCCESS);
    }
    let url = store::url(cli.url.as_deref())?;
    if let Command::Where = cli.command {
        println!("{url}");
        return Ok(ExitCode::SUCCESS);
    }
    if url.starts_with("memory://") && cli.command.writes() {
        eprintln!("kv: warning: memory:// keeps nothing once this command ends");
    }
    let store = store::open(&url, cli.wait).await?;
    let output = cli.output;
    match cli.command {
        Command::Get { key } => match store.get(&key).await? {
            Some(pair) => print::pair(output, &pair),
            None => return Err(format!("{key}: not found").into()),
        },
        Command::Put { key, value, ttl } => {
            let options = ttl.map(PutOptions::ttl).unwrap_or_default();
            store.put_with(&key, value_of(value)?, options).await?;
        }
        Command::Rm { key, prefix: true } => store.delete_range(&key).await?,
        Command::Rm { key, prefix: false } => store.delete(&key).await?,
        Command::Ls { prefix } => print::pairs(output, &store.get_range(&prefix).await?),
        Command::Watch {
            key,
            prefix,
            count,
            timeout,
        } => return watch(&*store, output, &key, prefix, count, timeout).await,
        Command::Lock { key, command } => return lock(&*store, &key, &command).await,
        Command::Members { service, root } => {
            let discovery = Discovery::with_root(store, root);
            print::nodes(output, &discovery.members(&service).await?)
        }
        Command::Completions { .. } | Command::Where => {} // answered above, without a store
    }
    Ok(ExitCode::SUCCESS)
}

/// The value of `kv put`: the argument, or standard input for `-`.
fn value_of(argument: String) -> Result<Bytes, Failure> {
    if argument != "-" {
        return Ok(Bytes::from(argument));
    }
    let mut value = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut value)
        .map_err(|e| format!("cannot read the value from standard input: {e}"))?;
    Ok(Bytes::from(value))
}

async fn watch(
    store: &dyn Store,
    output: Output,
    key: &str,
    prefix: bool,
    count: Option<u64>,
    timeout: Option<std::time::Duration>,
) -> Result<ExitCode, Failure> {
    let mut events = if prefix {
        store.watch_range(key, WatchOptions::default()).await?
    } else {
        store.watch(key, WatchOptions::default()).await?
    };
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut seen = 0u64;
    while count.is_none_or(|count| seen < count) {
        let event = tokio::select! {
            event = events.next() => event,
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            _ = sleep_until(deadline) => {
                return match count {
                    Some(count) => Err(format!("{seen} of {count} events came before the timeout").into()),
                    None => Ok(ExitCode::SUCCESS),
                };
            }
        };
        match event {
            Some(Ok(event)) => print::event(output, &event),
            Some(Err(error)) => return Err(error.into()),
            None => return Ok(ExitCode::SUCCESS),
        }
        seen += 1;
    }
    Ok(ExitCode::SUCCESS)
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn lock(store: &dyn Store, key: &str, command: &[String]) -> Result<ExitCode, Failure> {
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
    let code = status.code().unwrap_or(1).clamp(0, 255);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// The error and its causes on one line, each once.
fn one_line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        let text = current.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = current.source();
    }
    line.replace('\n', " ")
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("kv: {}", one_line(&*error));
            ExitCode::FAILURE
        }
    }
}
