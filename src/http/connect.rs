//! Building the pooled hyper clients, and the errors their failures mean.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::bounded::BoundedConnector;
use super::endpoint::Endpoint;
use crate::{Error, Result};

/// How a pool opens a connection: TCP, at most `per_host` per endpoint,
/// then TLS where the endpoint is `https://` (with the `tls` feature).
#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<BoundedConnector<HttpConnector>>;
#[cfg(not(feature = "tls"))]
type Connector = BoundedConnector<HttpConnector>;

/// A pool of connections, at most `per_host` to each endpoint.
pub(super) type Pool = Client<Connector, Full<Bytes>>;

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
    let connector = BoundedConnector::new(connector, per_host);
    #[cfg(feature = "tls")]
    let connector = super::tls::wrap(tls, connector)?;
    // `create_store` refused TLS settings already.
    #[cfg(not(feature = "tls"))]
    let _ = tls;
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
pub(super) fn request_error(
    operation: &str,
    endpoint: &Endpoint,
    error: hyper_util::client::legacy::Error,
) -> Error {
    #[cfg(feature = "tls")]
    if let Some(message) = super::tls::tls_failure(&error) {
        return Error::Tls {
            message: format!("{operation} to {endpoint}: {message}"),
        };
    }
    let message = if error.is_connect() {
        format!("{operation}: cannot reach {endpoint}")
    } else {
        format!("{operation}: the connection to {endpoint} broke")
    };
    Error::Unreachable {
        message,
        source: Some(std::sync::Arc::new(error)),
    }
}

pub(super) fn reply_body_error(
    operation: &str,
    endpoint: &Endpoint,
    limit: usize,
    error: Box<dyn std::error::Error + Send + Sync>,
) -> Error {
    if error.is::<http_body_util::LengthLimitError>() {
        return Error::malformed(format!(
            "the reply to {operation} is larger than {limit} bytes"
        ));
    }
    Error::Unreachable {
        message: format!("the reply of {endpoint} to {operation} was cut off"),
        source: Some(std::sync::Arc::from(error)),
    }
}
