//! `kv` run as a user runs it: the binary `cargo install --path cli`
//! installs, against the real servers, checking its output and exit codes.
//!
//! `./scripts/test` installs it and names it in `KV_CLI_BIN`; without that
//! variable the first test installs it under `target/kv-install`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use kvmesh::discovery::{Discovery, Node};

/// Set by `./scripts/test`: a missing server fails instead of skipping.
const REQUIRE_SERVERS: &str = "KV_REQUIRE_SERVERS";

fn server_addr(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(addr) if !addr.is_empty() => Some(addr),
        _ if std::env::var_os(REQUIRE_SERVERS).is_some() => {
            panic!("{var} is not set but {REQUIRE_SERVERS} is: the server is missing")
        }
        _ => {
            eprintln!("SKIPPED {test}: {var} is not set (run ./scripts/test)");
            None
        }
    }
}

fn unique(case: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("kvtest/{case}/{}-{nanos}/", std::process::id())
}

/// The installed `kv`.
fn kv_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(binary) = std::env::var_os("KV_CLI_BIN") {
            return PathBuf::from(binary);
        }
        let cli = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let root = cli.join("../target/kv-install");
        // A target directory of its own: the one `cargo test` uses is locked.
        let status = Command::new(env!("CARGO"))
            .args([
                "install", "--debug", "--locked", "--force", "--quiet", "--path",
            ])
            .arg(&cli)
            .arg("--root")
            .arg(&root)
            .arg("--target-dir")
            .arg(root.join("build"))
            .status()
            .expect("run cargo install");
        assert!(status.success(), "cargo install --path cli failed");
        root.join("bin")
            .join(format!("kv{}", std::env::consts::EXE_SUFFIX))
    })
}

/// `kv` as a new user runs it: no `KV_URL`, and a fresh home directory
/// (its default file store lives there).
fn kv_command() -> Command {
    kv_in_home(&fresh_home("default"))
}

/// `kv` with `home` as the user's home directory.
fn kv_in_home(home: &std::path::Path) -> Command {
    let mut command = Command::new(kv_binary());
    command
        .env_remove("KV_URL")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", home);
    command
}

/// A new, empty home directory under `target/`.
fn fresh_home(case: &str) -> PathBuf {
    let home = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/kv-homes")
        .join(unique(case).replace('/', "_"));
    std::fs::create_dir_all(&home).expect("make a home directory");
    home
}

fn kv(url: &str, args: &[&str]) -> Output {
    kv_command()
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
    let other = format!("{dir}other");
    assert!(
        kv(url, &["put", &other, "2", "--ttl", "60s"])
            .status
            .success()
    );
    let ls = kv(url, &["ls", dir]);
    assert_eq!(
        stdout(&ls),
        format!("{dir}greeting\thello world\n{dir}other\t2\n")
    );
    // JSON for scripts: the same listing, with versions.
    let json = kv(url, &["ls", dir, "--output", "json"]);
    let listing: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(listing[0]["key"], key.as_str());
    assert_eq!(listing[0]["value"], "hello world");
    assert!(listing[1]["version"].as_u64().is_some_and(|v| v > 0));
    let one = kv(url, &["--output", "json", "get", &other]);
    let one: serde_json::Value = serde_json::from_slice(&one.stdout).expect("JSON");
    assert_eq!(
        (one["key"].as_str(), one["value"].as_str()),
        (Some(other.as_str()), Some("2"))
    );

    assert!(kv(url, &["rm", &key]).status.success());
    let missing = kv(url, &["get", &key]);
    assert!(!missing.status.success());
    assert_eq!(stderr(&missing).lines().count(), 1, "{}", stderr(&missing));
    assert!(stderr(&missing).contains("not found"));
    assert!(kv(url, &["rm", "--prefix", dir]).status.success());
    assert_eq!(stdout(&kv(url, &["ls", dir])), "");
}

/// A file store needs no server, and what one `kv` wrote the next reads.
#[test]
fn get_put_ls_rm_on_a_file_store() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kv-file");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.redb", unique("cli-file").replace('/', "_")));
    let url = format!("file://{}", path.display());
    check_round_trip(&url, "app/");
    assert!(kv(&url, &["put", "kept", "yes"]).status.success());
    let later = kv(&url, &["get", "kept"]);
    assert_eq!(stdout(&later), "yes\n", "{}", stderr(&later));
    assert!(!stderr(&later).contains("warning"));
}

#[test]
fn get_put_ls_rm_on_etcd_and_consul() {
    let test = "get_put_ls_rm_on_etcd_and_consul";
    if let Some(addr) = server_addr("KV_ETCD35_ADDR", test) {
        check_round_trip(&format!("etcd://{addr}"), &unique("cli-etcd"));
    }
    if let Some(addr) = server_addr("KV_CONSUL_ADDR", test) {
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
    // Each cause once: the unreachable store names the endpoint.
    let message = stderr(&kv("etcd://127.0.0.1:1?timeout=1s", &["get", "k"]));
    assert!(message.contains("http://127.0.0.1:1"), "{message}");
}

/// With neither `--url` nor `KV_URL`, `kv` keeps its keys in a file store
/// in the user's data directory: what one `kv` writes, the next reads.
#[test]
fn without_a_url_kv_uses_a_file_store_in_the_data_directory() {
    let home = fresh_home("no-url");
    let run = |args: &[&str]| kv_in_home(&home).args(args).output().expect("run kv");
    let put = run(&["put", "greeting", "hello"]);
    assert!(put.status.success(), "{}", stderr(&put));
    let get = run(&["get", "greeting"]);
    assert_eq!(
        (stdout(&get).as_str(), get.status.success()),
        ("hello\n", true)
    );
    let place = run(&["where"]);
    let expected = home.join(".local/share/kvmesh/kv.redb");
    assert_eq!(
        stdout(&place).trim(),
        format!("file://{}", expected.display())
    );
    assert!(expected.exists());
    let help = run(&["--help"]);
    assert!(stdout(&help).contains("kv where"), "{}", stdout(&help));
}

/// A file store serves one process at a time: a `kv` that finds it in use
/// waits for it (`--wait`), then says who holds it and what to use instead.
#[test]
fn a_file_store_in_use_is_waited_for_then_named() {
    let home = fresh_home("in-use");
    let holder = kv_in_home(&home)
        .args(["watch", "k", "--timeout", "3s"])
        .stdout(Stdio::null())
        .spawn()
        .expect("run kv watch");
    std::thread::sleep(Duration::from_millis(800)); // the watch has the file
    let refused = kv_in_home(&home)
        .args(["get", "k", "--wait", "200ms"])
        .output()
        .expect("run kv");
    let message = stderr(&refused);
    assert!(!refused.status.success());
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.contains(&format!("process {}", holder.id())),
        "{message}"
    );
    assert!(message.contains("server"), "{message}");
    // The default wait outlasts the watch: the put goes through after it.
    let put = kv_in_home(&home)
        .args(["put", "k", "v"])
        .output()
        .expect("run kv");
    assert!(put.status.success(), "{}", stderr(&put));
    let mut holder = holder;
    assert!(holder.wait().expect("the watch ends").success());
}

/// `kv put KEY -` reads the value from standard input; `watch --count`
/// and `--timeout` end a watch; `--ttl` wants a unit, as a URL does.
#[test]
fn stdin_values_counted_watches_and_durations() {
    use std::io::Write;
    let home = fresh_home("stdin");
    let value: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let mut put = kv_in_home(&home)
        .args(["put", "blob", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("run kv put");
    put.stdin.take().expect("stdin").write_all(&value).unwrap();
    assert!(put.wait().unwrap().success());
    let json = kv_in_home(&home)
        .args(["get", "blob", "--output", "json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    use base64::Engine as _;
    let read = base64::engine::general_purpose::STANDARD
        .decode(json["value_base64"].as_str().expect("not UTF-8: base64"))
        .unwrap();
    assert_eq!(read, value, "the whole value, byte for byte");

    let once = kv_in_home(&home)
        .args([
            "watch",
            "blob",
            "--count",
            "1",
            "--timeout",
            "10s",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert!(once.status.success(), "{}", stderr(&once));
    assert_eq!(stdout(&once).lines().count(), 1);
    let short = kv_in_home(&home)
        .args([
            "watch",
            "--prefix",
            "b",
            "--count",
            "2",
            "--timeout",
            "300ms",
        ])
        .output()
        .unwrap();
    assert!(!short.status.success());
    assert!(
        stderr(&short).contains("1 of 2 events"),
        "{}",
        stderr(&short)
    );

    let bare = kv_in_home(&home)
        .args(["put", "k", "v", "--ttl", "2"])
        .output()
        .unwrap();
    assert!(!bare.status.success());
    assert!(stderr(&bare).contains("unit"), "{}", stderr(&bare));
}

#[test]
fn memory_warns() {
    let from_env = kv_command()
        .env("KV_URL", "memory://")
        .args(["put", "k", "v"])
        .output()
        .expect("run kv");
    assert!(from_env.status.success(), "{}", stderr(&from_env));
    assert!(
        stderr(&from_env).contains("memory:// keeps nothing"),
        "{}",
        stderr(&from_env)
    );
}

#[test]
fn help_has_an_example_per_command_and_completions_print() {
    for command in [
        "get",
        "put",
        "rm",
        "ls",
        "watch",
        "lock",
        "members",
        "completions",
    ] {
        let help = kv_command()
            .args([command, "--help"])
            .output()
            .expect("run kv");
        assert!(help.status.success());
        assert!(
            stdout(&help).contains(&format!("kv {command}")),
            "{command}: {}",
            stdout(&help)
        );
    }
    for shell in ["bash", "zsh", "fish"] {
        let script = kv_command()
            .args(["completions", shell])
            .output()
            .expect("run kv");
        assert!(script.status.success(), "{shell}");
        assert!(stdout(&script).contains("members"), "{shell}");
    }
}

#[test]
fn lock_runs_the_command_while_holding_the_lock() {
    let test = "lock_runs_the_command_while_holding_the_lock";
    let Some(addr) = server_addr("KV_ETCD35_ADDR", test) else {
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
    let Some(addr) = server_addr("KV_ETCD35_ADDR", "members_and_watch") else {
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
    let elsewhere = kv(
        &url,
        &["members", &service, "--root", &format!("{root}other/")],
    );
    assert_eq!(stdout(&elsewhere), "", "another root has no members");
    let members = kv(&url, &["members", &service, "--output", "json"]);
    let members: serde_json::Value = serde_json::from_slice(&members.stdout).expect("JSON");
    assert_eq!(members[0]["meta"]["zone"], "z");
    registration.deregister().await.unwrap();

    for (output, expected) in [
        ("text", format!("PUT\t{root}k\tv\t")),
        ("json", "{\"event\":\"put\"".to_owned()),
    ] {
        let mut watch = kv_command()
            .args([
                "--url", &url, "--output", output, "watch", "--prefix", &root,
            ])
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
        assert!(line.starts_with(&expected), "{line}");
        store.delete(&format!("{root}k")).await.unwrap();
    }
}
