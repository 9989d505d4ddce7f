//! The `kv` example, run as a user runs it: the built binary against the
//! real servers, checking its output and exit codes.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::unique;

use kvmesh::discovery::{Discovery, Node};

/// `target/<profile>/examples/kv`, as `cargo build --examples` leaves it
/// (`cargo test` builds examples as test harnesses, under another name).
fn kv_binary() -> std::path::PathBuf {
    let deps = std::env::current_exe().expect("the test binary");
    let profile = deps
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let binary = profile
        .join("examples")
        .join(format!("kv{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build --examples` (./scripts/test does)",
        binary.display()
    );
    binary
}

fn kv(url: &str, args: &[&str]) -> Output {
    Command::new(kv_binary())
        .env_remove("KV_URL")
        .arg("--url")
        .arg(url)
        .args(args)
        .output()
        .expect("run kv")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn check_round_trip(url: &str, dir: &str) {
    let key = format!("{dir}greeting");
    let put = kv(url, &["put", &key, "hello world"]);
    assert!(put.status.success(), "put: {}", stderr(&put));
    let get = kv(url, &["get", &key]);
    assert!(get.status.success(), "get: {}", stderr(&get));
    assert_eq!(stdout(&get), "hello world\n");
    assert!(
        kv(url, &["put", &format!("{dir}other"), "2", "--ttl", "60s"])
            .status
            .success()
    );
    let ls = kv(url, &["ls", dir]);
    assert_eq!(
        stdout(&ls),
        format!("{dir}greeting\thello world\n{dir}other\t2\n")
    );
    assert!(kv(url, &["rm", &key]).status.success());
    let missing = kv(url, &["get", &key]);
    assert!(!missing.status.success());
    assert_eq!(
        stderr(&missing).lines().count(),
        1,
        "one line: {}",
        stderr(&missing)
    );
    assert!(stderr(&missing).contains("not found"));
    assert!(kv(url, &["rm", "--prefix", dir]).status.success());
    assert_eq!(stdout(&kv(url, &["ls", dir])), "");
}

#[tokio::test]
async fn get_put_ls_rm_on_etcd_and_consul() {
    let test = "get_put_ls_rm_on_etcd_and_consul";
    if let Some(addr) = support::server_addr("KV_ETCD35_ADDR", test) {
        check_round_trip(&format!("etcd://{addr}"), &unique("cli-etcd"));
    }
    if let Some(addr) = support::server_addr("KV_CONSUL_ADDR", test) {
        check_round_trip(&format!("consul://{addr}"), &unique("cli-consul"));
    }
}

#[test]
fn errors_are_one_line_and_a_non_zero_exit() {
    for (url, args) in [
        ("nonsense", vec!["get", "k"]),
        ("memory://?bogus=1", vec!["get", "k"]),
        ("etcd://127.0.0.1:1?timeout=1s", vec!["get", "k"]),
        ("memory://", vec!["get", ""]),
    ] {
        let output = kv(url, &args);
        assert!(!output.status.success(), "{url} {args:?} succeeded");
        let message = stderr(&output);
        assert_eq!(message.lines().count(), 1, "{url} {args:?}: {message}");
        assert!(message.starts_with("kv: "), "{message}");
    }
}

#[tokio::test]
async fn lock_runs_the_command_while_holding_the_lock() {
    let Some(addr) = support::server_addr(
        "KV_ETCD35_ADDR",
        "lock_runs_the_command_while_holding_the_lock",
    ) else {
        return;
    };
    let url = format!("etcd://{addr}");
    let key = unique("cli-lock") + "lock";
    let script = format!(
        "kv_out=$({} --url {url} get {key}); echo \"held by: $kv_out\"",
        kv_binary().display()
    );
    let held = kv(&url, &["lock", &key, "--", "sh", "-c", &script]);
    assert!(held.status.success(), "{}", stderr(&held));
    assert!(
        stdout(&held).starts_with("held by: kv lock (pid "),
        "{}",
        stdout(&held)
    );
    // Released afterwards; the command's exit code is kept.
    let failed = kv(&url, &["lock", &key, "--", "sh", "-c", "exit 3"]);
    assert_eq!(failed.status.code(), Some(3));
    assert!(
        !stdout(&kv(&url, &["ls", &key])).contains(&key),
        "the lock key is gone"
    );
}

#[tokio::test]
async fn members_and_watch() {
    let Some(addr) = support::server_addr("KV_ETCD35_ADDR", "members_and_watch") else {
        return;
    };
    let url = format!("etcd://{addr}");
    let root = unique("cli-members");
    // `kv members` reads the default discovery root; register there under a unique service.
    let service = root.replace('/', "_");
    let store = kvmesh::connect(&url).await.unwrap();
    let node = Node::new("n1", "10.1.1.1:80").with_meta("zone", "z");
    let registration = Discovery::new(store.clone())
        .register(&service, node, Duration::from_secs(30))
        .await
        .unwrap();
    let members = kv(&url, &["members", &service]);
    assert_eq!(stdout(&members), "n1\t10.1.1.1:80\tzone=z\n");
    registration.deregister().await.unwrap();

    let mut watch = Command::new(kv_binary())
        .args(["--url", &url, "watch", "--prefix", &root])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    tokio::time::sleep(Duration::from_millis(500)).await;
    store
        .put(&format!("{root}k"), kvmesh::Bytes::from("v"))
        .await
        .unwrap();
    let line = tokio::task::spawn_blocking(move || lines.next())
        .await
        .unwrap();
    let _ = watch.kill();
    let _ = watch.wait();
    let line = line.expect("a line").unwrap();
    assert!(line.starts_with(&format!("PUT\t{root}k\tv\t")), "{line}");
}
