//! Building the pooled hyper clients, and the errors their failures mean.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::bounded::BoundedConnector;
use crate::{Error, Result};

/// A pool of connections, at most `per_host` to each endpoint.
pub(super) type Pool = Client<HttpsConnector<BoundedConnector<HttpConnector>>, Full<Bytes>>;

/// A pool over TLS when `tls` is set; nothing connects until the first
/// request.
pub(super) fn pool(tls: Option<&crate::TlsConfig>, per_host: usize) -> Result<Pool> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    // Long polls and watch streams can be silent for minutes: let TCP
    // notice a peer that is gone.
    connector.set_keepalive(Some(Duration::from_secs(30)));
    connector.set_keepalive_interval(Some(Duration::from_secs(10)));
    connector.set_keepalive_retries(Some(3));
    connector.enforce_http(false);
    let connector = tls_connector(tls, BoundedConnector::new(connector, per_host))?;
    // Without a timer the pool evicts an idle connection only when a
    // later request looks at it: after a burst, a store kept every
    // connection it had opened, idle, for good.
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_timer(TokioTimer::new())
        .build(connector))
}

/// A failed request: [`Error::Tls`] when TLS is what failed, else
/// [`Error::Unreachable`].
pub(super) fn request_error(operation: &str, error: hyper_util::client::legacy::Error) -> Error {
    if let Some(message) = crate::tls::tls_failure(&error) {
        return Error::Tls {
            message: format!("{operation}: {message}"),
        };
    }
    Error::Unreachable {
        message: format!("{operation}: cannot reach the server"),
        source: Some(std::sync::Arc::new(error)),
    }
}

pub(super) fn reply_body_error(
    operation: &str,
    limit: usize,
    error: Box<dyn std::error::Error + Send + Sync>,
) -> Error {
    if error.is::<http_body_util::LengthLimitError>() {
        return Error::malformed(format!(
            "the reply to {operation} is larger than {limit} bytes"
        ));
    }
    Error::Unreachable {
        message: format!("the reply to {operation} was cut off: {error}"),
        source: Some(std::sync::Arc::from(error)),
    }
}

/// Wraps `connector` in TLS when `tls` is set. Without it the connector
/// speaks plain HTTP only (every endpoint is `http://`).
fn tls_connector(
    tls: Option<&crate::TlsConfig>,
    connector: BoundedConnector<HttpConnector>,
) -> Result<HttpsConnector<BoundedConnector<HttpConnector>>> {
    let client_config = match tls {
        Some(tls) => tls.client_config()?,
        None => rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidArgument(format!("TLS: {e}")))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth(),
    };
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config)
        .https_or_http();
    let builder = match tls.and_then(|t| t.server_name.clone()) {
        Some(name) => {
            let name = rustls_pki_types::ServerName::try_from(name.clone()).map_err(|_| {
                Error::InvalidArgument(format!("TLS server name {name:?} is not a DNS name or IP"))
            })?;
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    Ok(builder.enable_http1().wrap_connector(connector))
}
