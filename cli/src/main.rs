//! `kv`: read, write, watch and lock keys in any store kvmesh opens, from
//! the shell. Install with `cargo install --path cli`; `kv --help` shows
//! every command with an example. Errors are one line on stderr and a
//! non-zero exit.

mod args;
mod print;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use futures::StreamExt;
use kvmesh::discovery::Discovery;
use kvmesh::{Bytes, PutOptions, Store, WatchOptions};

use crate::args::{Cli, Command, Output};

type Failure = Box<dyn std::error::Error>;

/// The store the command line names, or what to set when it names none.
async fn open(url: Option<&str>, command: &Command) -> Result<std::sync::Arc<dyn Store>, Failure> {
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        return Err(
            "no store given: pass --url (e.g. --url etcd://127.0.0.1:2379) \
                    or set KV_URL"
                .into(),
        );
    };
    if url.starts_with("memory://") && command.writes() {
        eprintln!("kv: warning: memory:// keeps nothing once this command ends");
    }
    Ok(kvmesh::connect(url).await?)
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "kv", &mut std::io::stdout());
        return Ok(ExitCode::SUCCESS);
    }
    let store = open(cli.url.as_deref(), &cli.command).await?;
    let output = cli.output;
    match cli.command {
        Command::Get { key } => match store.get(&key).await? {
            Some(pair) => print::pair(output, &pair),
            None => return Err(format!("{key}: not found").into()),
        },
        Command::Put { key, value, ttl } => {
            let options = ttl.map(PutOptions::ttl).unwrap_or_default();
            store.put_with(&key, Bytes::from(value), options).await?;
        }
        Command::Rm { key, prefix: true } => store.delete_range(&key).await?,
        Command::Rm { key, prefix: false } => store.delete(&key).await?,
        Command::Ls { prefix } => print::pairs(output, &store.get_range(&prefix).await?),
        Command::Watch { key, prefix } => watch(&*store, output, key, prefix).await?,
        Command::Lock { key, command } => return lock(&*store, &key, &command).await,
        Command::Members { service } => {
            print::nodes(output, &Discovery::new(store).members(&service).await?)
        }
        Command::Completions { .. } => {} // printed above, without a store
    }
    Ok(ExitCode::SUCCESS)
}

async fn watch(
    store: &dyn Store,
    output: Output,
    key: Option<String>,
    prefix: Option<String>,
) -> Result<(), Failure> {
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
            Some(Ok(event)) => print::event(output, &event),
            Some(Err(error)) => return Err(error.into()),
            None => return Ok(()),
        }
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
