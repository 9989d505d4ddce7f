//! TLS against real servers: this test makes a CA, a server certificate, a
//! client certificate and a second, unrelated CA at run time (rcgen), starts
//! its own etcd and Consul with HTTPS and client-certificate checks, and
//! checks that the right CA and name work (with mTLS) while a wrong CA, a
//! wrong name or a missing client certificate fail with `Error::Tls`.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use kvmesh::{Backend, Config, Error, EtcdTransport, KvEvent, TlsConfig, WatchOptions};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use support::{server_addr, unique};
use tokio::process::{Child, Command};

/// The name in the server certificate (and only that: no IP address).
const SERVER_NAME: &str = "kvmesh-test-server";

struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes ca.pem, wrong-ca.pem, server.pem/-key.pem, client.pem/-key.pem.
    fn generate(case: &str) -> Pki {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("tls-{case}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Pki { dir };
        let ca = pki.authority("ca", "kvmesh test CA");
        pki.authority("wrong-ca", "an unrelated CA");
        pki.leaf(&ca, "server", SERVER_NAME, true);
        pki.leaf(&ca, "client", "kvmesh-test-client", false);
        // For servers whose clients check the URL's host (Redis).
        pki.leaf(&ca, "ip-server", "127.0.0.1", true);
        pki
    }

    fn authority(&self, file: &str, name: &str) -> Issuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        std::fs::write(self.path(&format!("{file}.pem")), certificate.pem()).unwrap();
        Issuer::new(params, key)
    }

    fn leaf(&self, issuer: &Issuer<'static, KeyPair>, file: &str, name: &str, server: bool) {
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        // Servers also dial themselves (etcd's gateway, Consul's RPC).
        params.extended_key_usages = if server {
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ]
        } else {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        };
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, issuer).unwrap();
        std::fs::write(self.path(&format!("{file}.pem")), certificate.pem()).unwrap();
        std::fs::write(self.path(&format!("{file}-key.pem")), key.serialize_pem()).unwrap();
    }

    /// The right CA, the client certificate and the certificate's name.
    fn client(&self) -> TlsConfig {
        TlsConfig::default()
            .with_ca_file(self.path("ca.pem"))
            .with_client_certificate(self.path("client.pem"), self.path("client-key.pem"))
            .with_server_name(SERVER_NAME)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn store(
    backend: Backend,
    addr: &str,
    tls: TlsConfig,
) -> kvmesh::Result<std::sync::Arc<dyn kvmesh::Store>> {
    store_over(backend, addr, tls, EtcdTransport::Http)
}

/// A store with `tls`; an etcd store over `transport`.
fn store_over(
    backend: Backend,
    addr: &str,
    tls: TlsConfig,
    transport: EtcdTransport,
) -> kvmesh::Result<std::sync::Arc<dyn kvmesh::Store>> {
    kvmesh::create_store(
        backend,
        &[addr],
        Config::default()
            .with_timeout(Duration::from_secs(3))
            .with_tls(tls)
            .with_etcd_transport(transport),
    )
}

/// Waits until the server answers a TLS read with the right settings.
async fn wait_until_up(child: &mut Child, backend: Backend, addr: &str, pki: &Pki) {
    let client = store(backend, addr, pki.client()).unwrap();
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the {backend:?} TLS server exited during start-up: {status}");
        }
        if client.get("kvmesh-tls/ready").await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the {backend:?} TLS server did not answer within 60 s");
}

async fn start_etcd(binary: &str, pki: &Pki) -> (Child, String) {
    let (client, peer) = (free_port(), free_port());
    let addr = format!("127.0.0.1:{client}");
    let data = pki.path("etcd-data");
    let mut child = Command::new(binary)
        .args(["--name", "tls", "--data-dir"])
        .arg(&data)
        .arg(format!("--listen-client-urls=https://{addr}"))
        .arg(format!("--advertise-client-urls=https://{addr}"))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
        ))
        .arg(format!("--initial-cluster=tls=http://127.0.0.1:{peer}"))
        .arg("--cert-file")
        .arg(pki.path("server.pem"))
        .arg("--key-file")
        .arg(pki.path("server-key.pem"))
        .arg("--trusted-ca-file")
        .arg(pki.path("ca.pem"))
        .arg("--client-cert-auth")
        .args(["--logger", "zap", "--log-level", "error"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start etcd");
    wait_until_up(&mut child, Backend::Etcd, &addr, pki).await;
    (child, addr)
}

async fn start_consul(binary: &str, pki: &Pki) -> (Child, String) {
    let https = free_port();
    let (server, lan, wan) = (free_port(), free_port(), free_port());
    let addr = format!("127.0.0.1:{https}");
    let file = |name: &str| pki.path(name).display().to_string();
    let mut child = Command::new(binary)
        .env("CHECKPOINT_DISABLE", "1")
        .args(["agent", "-dev", "-node", "kvmesh-tls", "-bind", "127.0.0.1"])
        .args(["-client", "127.0.0.1", "-dns-port", "-1", "-grpc-port", "-1"])
        .arg(format!("-server-port={server}"))
        .arg(format!("-serf-lan-port={lan}"))
        .arg(format!("-serf-wan-port={wan}"))
        .arg("-hcl")
        .arg(format!("ports {{ http = -1, https = {https}, grpc_tls = -1 }}"))
        .arg("-hcl")
        .arg(format!(
            "tls {{ defaults {{ ca_file = \"{}\", cert_file = \"{}\", key_file = \"{}\" }} https {{ verify_incoming = true }} }}",
            file("ca.pem"),
            file("server.pem"),
            file("server-key.pem")
        ))
        .args(["-hcl", "disable_update_check = true"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start consul");
    wait_until_up(&mut child, Backend::Consul, &addr, pki).await;
    (child, addr)
}

/// What must work and what must fail, on one TLS server.
async fn check(backend: Backend, addr: &str, pki: &Pki, scheme: &str) {
    check_over(backend, addr, pki, scheme, EtcdTransport::Http).await;
}

async fn check_over(
    backend: Backend,
    addr: &str,
    pki: &Pki,
    scheme: &str,
    transport: EtcdTransport,
) {
    let store = |backend, addr, tls| store_over(backend, addr, tls, transport);
    // The right CA, name and client certificate: reads, writes and a watch.
    let good = store(backend, addr, pki.client()).unwrap();
    let key = format!("{}k", unique("tls"));
    let mut watch = good.watch(&key, WatchOptions::default()).await.unwrap();
    good.put(&key, Bytes::from("over TLS")).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(30), watch.next())
        .await
        .expect("an event")
        .expect("the watch goes on")
        .expect("no error");
    match event {
        KvEvent::Put(pair) => assert_eq!(pair.value, Bytes::from("over TLS")),
        other => panic!("{other:?}"),
    }
    // The same through a URL.
    let mut url = format!(
        "{scheme}://{addr}?ca_file={}&cert_file={}&key_file={}&tls_server_name={SERVER_NAME}",
        pki.path("ca.pem").display(),
        pki.path("client.pem").display(),
        pki.path("client-key.pem").display()
    );
    if transport == EtcdTransport::Grpc {
        url.push_str("&transport=grpc");
    }
    let by_url = kvmesh::connect(&url).await.unwrap();
    assert_eq!(
        by_url.get(&key).await.unwrap().expect("present").value,
        Bytes::from("over TLS")
    );

    let expect_tls = |what: &str, result: kvmesh::Result<Option<kvmesh::KvPair>>| match result {
        Err(Error::Tls { message }) => {
            assert!(!message.is_empty());
            eprintln!("{what}: Error::Tls: {message}");
        }
        other => panic!("{what}: expected Error::Tls, got {other:?}"),
    };
    let mut wrong_ca = pki.client();
    wrong_ca.ca_file = Some(pki.path("wrong-ca.pem"));
    expect_tls(
        "a wrong CA",
        store(backend, addr, wrong_ca).unwrap().get(&key).await,
    );
    let mut no_name = pki.client();
    no_name.server_name = None; // the certificate does not name 127.0.0.1
    expect_tls(
        "the address as the name",
        store(backend, addr, no_name).unwrap().get(&key).await,
    );
    let mut other_name = pki.client();
    other_name.server_name = Some("another-server".into());
    expect_tls(
        "another name",
        store(backend, addr, other_name).unwrap().get(&key).await,
    );
    let mut no_client_certificate = pki.client();
    no_client_certificate.cert_file = None;
    no_client_certificate.key_file = None;
    // Under TLS 1.3 the server refuses a missing client certificate after the
    // client has finished its handshake: the alert usually arrives (Tls), but
    // the connection may close before it is read (Unreachable). Never Ok.
    match store(backend, addr, no_client_certificate)
        .unwrap()
        .get(&key)
        .await
    {
        Err(Error::Tls { message }) => eprintln!("no client certificate: {message}"),
        Err(error @ Error::Unreachable { .. }) => eprintln!("no client certificate: {error}"),
        other => panic!("no client certificate: expected an error, got {other:?}"),
    }
    // Plain HTTP to the HTTPS port is refused too, promptly.
    let plain = kvmesh::create_store(
        backend,
        &[addr],
        Config::default()
            .with_timeout(Duration::from_secs(3))
            .with_etcd_transport(transport),
    )
    .unwrap();
    assert!(plain.get(&key).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_over_tls() {
    let Some(binary) = server_addr("KV_ETCD_BIN", "etcd_over_tls") else {
        return;
    };
    let pki = Pki::generate("etcd");
    let (_server, addr) = start_etcd(&binary, &pki).await;
    check(Backend::Etcd, &addr, &pki, "etcd+https").await;
    #[cfg(feature = "grpc")]
    check_over(
        Backend::Etcd,
        &addr,
        &pki,
        "etcd+https",
        EtcdTransport::Grpc,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_over_tls() {
    let Some(binary) = server_addr("KV_CONSUL_BIN", "consul_over_tls") else {
        return;
    };
    let pki = Pki::generate("consul");
    let (_server, addr) = start_consul(&binary, &pki).await;
    check(Backend::Consul, &addr, &pki, "consul+https").await;
}

/// `rediss://` against a Redis started here with TLS: the right CA works
/// (and with a client certificate), a wrong CA is `Error::Tls`.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls() {
    let Some(binary) = server_addr("KV_REDIS_SERVER_BIN", "redis_over_tls") else {
        return;
    };
    let pki = Pki::generate("redis");
    let port = free_port();
    let file = |name: &str| pki.path(name).display().to_string();
    let mut server = Command::new(binary)
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args([
            "--tls-port",
            &port.to_string(),
            "--tls-auth-clients",
            "optional",
        ])
        .args(["--tls-cert-file", &file("ip-server.pem")])
        .args(["--tls-key-file", &file("ip-server-key.pem")])
        .args(["--tls-ca-cert-file", &file("ca.pem")])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server starts");
    let url = |query: String| format!("rediss://127.0.0.1:{port}?timeout=3s&{query}");
    let right = url(format!("ca_file={}", file("ca.pem")));
    let mut store = None;
    for _ in 0..100 {
        assert!(server.try_wait().unwrap().is_none(), "redis-server exited");
        if let Ok(opened) = kvmesh::connect(&right).await {
            store = Some(opened);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let store = store.expect("the TLS Redis answers with the right CA");
    store.put("k", Bytes::from("over tls")).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().unwrap().value, "over tls");
    let mtls = url(format!(
        "ca_file={}&cert_file={}&key_file={}",
        file("ca.pem"),
        file("client.pem"),
        file("client-key.pem")
    ));
    let store = kvmesh::connect(&mtls)
        .await
        .expect("with a client certificate too");
    assert_eq!(store.get("k").await.unwrap().unwrap().value, "over tls");
    let wrong = url(format!("ca_file={}", file("wrong-ca.pem")));
    match kvmesh::connect(&wrong).await {
        Err(Error::Tls { message }) => assert!(!message.is_empty()),
        other => panic!("a wrong CA: {:?}", other.map(|_| ())),
    }
}

#[test]
fn bad_tls_settings_are_invalid_arguments() {
    let pki = Pki::generate("settings");
    let bad = [
        TlsConfig::default().with_ca_file(pki.path("missing.pem")),
        TlsConfig::default().with_ca_file(pki.path("client-key.pem")), // a key, not a certificate
        {
            let mut only_cert = TlsConfig::default().with_ca_file(pki.path("ca.pem"));
            only_cert.cert_file = Some(pki.path("client.pem"));
            only_cert
        },
        TlsConfig::default()
            .with_client_certificate(pki.path("client.pem"), pki.path("missing-key.pem")),
        TlsConfig::default().with_server_name("not a name"),
    ];
    for tls in bad {
        match store(Backend::Etcd, "127.0.0.1:1", tls.clone()) {
            Err(Error::InvalidArgument(message)) => eprintln!("{message}"),
            other => panic!("{tls:?}: expected InvalidArgument, got {other:?}"),
        }
    }
    assert!(matches!(
        kvmesh::create_store(Backend::Consul, &["127.0.0.1:1"], Config::default()).map(|_| ()),
        Ok(())
    ));
}
