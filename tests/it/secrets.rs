//! Secrets never leave kvmesh: the Consul token, the etcd password and the
//! etcd token appear in no `Display`, no `Debug` and no `tracing` output,
//! even at TRACE level, whether the credentials are right or wrong.

use crate::support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kvmesh::{Bytes, Config, WatchOptions};

/// Collects everything written by the tracing subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn no_secret_in_display_debug_or_traces() {
    let test = "no_secret_in_display_debug_or_traces";
    let (Some(consul), Some(token), Some(etcd), Some(user), Some(password)) = (
        support::server_addr("KV_CONSUL_ACL_ADDR", test),
        support::server_addr("KV_CONSUL_ACL_TOKEN", test),
        support::server_addr("KV_ETCD_AUTH_ADDR", test),
        support::server_addr("KV_ETCD_AUTH_USER", test),
        support::server_addr("KV_ETCD_AUTH_PASSWORD", test),
    ) else {
        return;
    };
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut shown = Vec::new();
    let key = format!("kvtest/secrets/{}/k", std::process::id());
    // Right and wrong credentials, through every path that carries them.
    for (consul_token, etcd_password) in [
        (token.as_str(), password.as_str()),
        ("wrong-token-x1", "wrong-pw-x1"),
    ] {
        let consul_store = kvmesh::create_store(
            kvmesh::Backend::Consul,
            &[&consul],
            Config::default().with_token(consul_token),
        )
        .unwrap();
        let etcd_store = kvmesh::create_store(
            kvmesh::Backend::Etcd,
            &[&etcd],
            Config::default().with_credentials(&user, etcd_password),
        )
        .unwrap();
        let url = format!("etcd://{user}:{etcd_password}@{etcd}");
        // `connect` authenticates: a wrong password is refused there,
        // without naming a secret.
        match kvmesh::connect(&url).await {
            Ok(store) => assert_eq!(etcd_password, password, "{store:?}"),
            Err(refused) => {
                assert_ne!(etcd_password, password, "{refused:?}");
                assert!(
                    matches!(refused, kvmesh::Error::PermissionDenied(_)),
                    "{refused:?}"
                );
                shown.push(format!("{refused} {refused:?}"));
            }
        }
        let url_store = kvmesh::connect_lazy(&url).unwrap();
        for store in [&consul_store, &etcd_store, &url_store] {
            shown.push(format!("{store:?}"));
            let results = [
                store.put(&key, Bytes::from("v")).await.map(|_| ()),
                store.get(&key).await.map(|_| ()),
                store.watch(&key, WatchOptions::default()).await.map(|_| ()),
                store
                    .try_acquire(&(key.clone() + "-lock"), Bytes::new())
                    .await
                    .map(|_| ()),
            ];
            for result in results {
                if let Err(error) = result {
                    shown.push(format!("{error}"));
                    shown.push(format!("{error:?}"));
                }
            }
        }
        if consul_token == token {
            let mut watch = etcd_store
                .watch(&key, WatchOptions::default())
                .await
                .unwrap();
            let _ = tokio::time::timeout(Duration::from_millis(200), watch.next()).await;
            etcd_store.delete(&key).await.unwrap();
            consul_store.delete(&key).await.unwrap();
        }
    }
    let traces = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(traces.contains("http"), "the traces were captured");
    // The etcd token itself: fetch one to know what to look for.
    let body = format!(r#"{{"name":"{user}","password":"{password}"}}"#);
    let reply = support::http_post(&format!("http://{etcd}/v3/auth/authenticate"), body).await;
    let etcd_token: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    let etcd_token = etcd_token["token"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    for secret in [
        token.as_str(),
        password.as_str(),
        "wrong-token-x1",
        "wrong-pw-x1",
        etcd_token.as_str(),
    ] {
        assert!(!traces.contains(secret), "a secret is in the traces");
        for text in &shown {
            assert!(!text.contains(secret), "a secret is shown: {text}");
        }
    }
}
