//! Helpers shared by the test binaries that talk to real servers.
#![allow(dead_code, unreachable_pub)]

pub mod fake_http;
pub mod linearizability;
pub mod proxy;
pub mod shared_watches;

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

/// Established TCP connections from this process to `port` on any address,
/// read from `/proc` (Linux): the sockets among this process's file
/// descriptors whose remote end is `port`.
pub fn tcp_connections_to(port: u16) -> usize {
    let mut inodes = std::collections::HashSet::new();
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let target = target.to_string_lossy().into_owned();
                if let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|t| t.strip_suffix(']'))
                {
                    inodes.insert(inode.to_owned());
                }
            }
        }
    }
    tcp_sockets()
        .filter(|s| s.state == "01" && s.remote_port == port && inodes.contains(&s.inode))
        .count()
}

/// One row of the network namespace's TCP tables (`/proc/net/tcp{,6}`).
struct TcpSocket {
    local_port: u16,
    remote_port: u16,
    /// Hex state: `01` established, `08` close-wait.
    state: String,
    inode: String,
}

fn tcp_sockets() -> impl Iterator<Item = TcpSocket> {
    let port_of = |field: &str| {
        field
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    let mut sockets = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 {
                continue;
            }
            if let (Some(local_port), Some(remote_port)) = (port_of(fields[1]), port_of(fields[2]))
            {
                sockets.push(TcpSocket {
                    local_port,
                    remote_port,
                    state: fields[3].to_owned(),
                    inode: fields[9].to_owned(),
                });
            }
        }
    }
    sockets.into_iter()
}

/// Connections the server on `server_port` still holds open (established,
/// or closed by the client but not yet by the server: `CLOSE_WAIT`) whose
/// client end is one of `client_ports`. Reads the whole namespace's table,
/// so it sees the server's side of each connection.
pub fn server_side_connections(server_port: u16, client_ports: &[u16]) -> usize {
    tcp_sockets()
        .filter(|s| s.state == "01" || s.state == "08")
        .filter(|s| s.local_port == server_port && client_ports.contains(&s.remote_port))
        .count()
}

/// A plain HTTP GET through hyper; panics on failure.
pub async fn http_get(url: &str) -> bytes::Bytes {
    use http_body_util::{BodyExt, Empty};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let response = client
        .get(url.parse().expect("a valid URL"))
        .await
        .expect("GET");
    response
        .into_body()
        .collect()
        .await
        .expect("a whole body")
        .to_bytes()
}

/// Runs one test of this same test binary in a child process, with `env`.
pub fn spawn_child_test(test: &str, env: &[(&str, &str)]) -> std::process::Child {
    let exe = std::env::current_exe().expect("the test binary");
    let mut command = std::process::Command::new(exe);
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().expect("spawn the child test")
}

/// Waits (up to 30 s) until the child prints a line ending in `line`; kills
/// the child if it does not, so that nothing is left running. The child's
/// output is drained until it exits, so its later prints never fail.
pub async fn wait_for_line(child: &mut std::process::Child, line: &str) {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("piped stdout");
    let wanted = line.to_owned();
    let (found, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // libtest prints "test name ... " without a newline before the output.
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if l.trim_end().ends_with(wanted.as_str()) {
                let _ = found.send(());
            }
        }
    });
    let waited =
        tokio::task::spawn_blocking(move || seen.recv_timeout(std::time::Duration::from_secs(30)))
            .await;
    if !matches!(waited, Ok(Ok(()))) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the child never printed {line:?}");
    }
}

/// A plain HTTP POST through hyper; panics on failure.
pub async fn http_post(url: &str, body: String) -> bytes::Bytes {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let request = hyper::Request::post(url)
        .body(Full::new(bytes::Bytes::from(body)))
        .expect("a valid request");
    let response = client.request(request).await.expect("POST");
    response
        .into_body()
        .collect()
        .await
        .expect("a whole body")
        .to_bytes()
}

/// `kvtest/<case>/<pid>-<nanos>/`: a key prefix no other test, run or process uses.
pub fn unique(case: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("kvtest/{case}/{}-{nanos}/", std::process::id())
}

/// `scripts/servers <args>`; panics when it fails.
pub fn servers(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/servers");
    let output = std::process::Command::new(script)
        .args(args)
        .output()
        .expect("run scripts/servers");
    assert!(
        output.status.success(),
        "scripts/servers {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A semaphore permit held by a child process (`lock_holder_child` with
/// `KV_CHILD_SEMAPHORE` and `child_env`) that is killed frees once its
/// lease or session expires (within 15 s of a 2 s lock TTL).
pub async fn a_killed_holder_frees_its_permit(
    store: std::sync::Arc<dyn kvmesh::Store>,
    child_env: (&str, &str),
    key: &str,
) {
    use kvmesh::Bytes;
    use kvmesh::semaphore::Semaphore;
    let mut child = spawn_child_test(
        "lock_holder_child",
        &[
            child_env,
            ("KV_CHILD_KEY", key),
            ("KV_CHILD_SEMAPHORE", "1"),
        ],
    );
    wait_for_line(&mut child, "HELD").await;
    let permits = Semaphore::new(store, key, 1);
    assert_eq!(permits.holders().await.unwrap(), [Bytes::from("child")]);
    assert!(
        permits
            .try_acquire(Bytes::from("parent"))
            .await
            .unwrap()
            .is_none()
    );
    child.kill().unwrap(); // SIGKILL: the lease or session is left to expire
    child.wait().unwrap();
    let parent = permits.acquire(Bytes::from("parent"));
    let permit = tokio::time::timeout(std::time::Duration::from_secs(15), parent)
        .await
        .expect("the child's lifetime expires and its permit frees")
        .unwrap();
    assert_eq!(permits.holders().await.unwrap(), [Bytes::from("parent")]);
    permit.release().await.unwrap();
}

/// The child side of the killed-holder tests: takes the lock on `key` (a
/// permit of a semaphore of 1 with `KV_CHILD_SEMAPHORE`), says `HELD`, and
/// holds until it is killed.
pub async fn hold_until_killed(store: std::sync::Arc<dyn kvmesh::Store>, key: &str) {
    use kvmesh::Bytes;
    let value = Bytes::from("child");
    let held: Box<dyn std::any::Any> = if std::env::var_os("KV_CHILD_SEMAPHORE").is_some() {
        let permits = kvmesh::semaphore::Semaphore::new(store, key, 1);
        Box::new(permits.acquire(value).await.unwrap())
    } else {
        Box::new(store.acquire(key, value).await.unwrap())
    };
    println!("HELD");
    tokio::time::sleep(std::time::Duration::from_secs(600)).await;
    drop(held);
}

/// `url` over the etcd transport `KV_ETCD_TRANSPORT` names (`http` or
/// `grpc`), when it is an etcd URL with a query and the variable is set:
/// `scripts/test` runs the etcd cases of some binaries on both.
#[allow(dead_code)] // not every test binary has etcd cases
pub fn over_etcd_transport(url: String) -> String {
    match std::env::var("KV_ETCD_TRANSPORT") {
        Ok(transport) if !transport.is_empty() && url.starts_with("etcd://") => {
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}transport={transport}")
        }
        _ => url,
    }
}

/// Puts `value` at `key` until it is acknowledged, within `limit`: through
/// a fault, a write fails retryably or with its outcome unknown (never sent
/// again by kvmesh); a test that only needs the value there in the end
/// sends it again, as a user would after reading it back.
pub async fn put_until_done(
    store: &dyn kvmesh::Store,
    key: &str,
    value: &str,
    limit: std::time::Duration,
) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match store.put(key, bytes::Bytes::from(value.to_owned())).await {
            Ok(()) => return,
            Err(error)
                if (error.is_retryable()
                    || matches!(error, kvmesh::Error::OutcomeUnknown { .. }))
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(error) => panic!("put {key:?} = {value:?} not done within {limit:?}: {error}"),
        }
    }
}
