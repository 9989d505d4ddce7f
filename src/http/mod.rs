//! The one pooled HTTP/1.1 client that a network store, its clones and all
//! of its watches share, with endpoint failover and bounded replies.

mod endpoint;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AsHeaderName, CONTENT_LENGTH, HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use self::endpoint::Endpoint;
use crate::{Error, Result};

/// Replies larger than this are refused rather than buffered.
pub(crate) const DEFAULT_MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;

/// What a caller sends; the client picks the endpoint.
#[derive(Debug)]
pub(crate) struct HttpRequest<'a> {
    pub(crate) method: Method,
    /// Path and query, already percent-encoded, starting with `/`.
    pub(crate) path: &'a str,
    pub(crate) body: Bytes,
    /// Safe to send again after a failure that may have reached the server.
    pub(crate) idempotent: bool,
    pub(crate) timeout: Duration,
    /// What is being done, for errors and traces (never a secret).
    pub(crate) operation: &'static str,
    /// Headers of this request only (credentials: never logged).
    pub(crate) headers: &'a [(HeaderName, HeaderValue)],
}

/// A whole reply.
#[derive(Debug)]
pub(crate) struct HttpReply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl HttpReply {
    /// A header as text, if present and valid. A `&'static HeaderName`
    /// is looked up without parsing its name.
    pub(crate) fn header(&self, name: impl AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The start of the body, for error messages.
    pub(crate) fn excerpt(&self) -> String {
        excerpt(&self.body)
    }
}

/// At most 200 bytes of `body`, lossily as text.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let cut = &body[..body.len().min(200)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if body.len() > cut.len() {
        text.push('…');
    }
    text
}

/// The pooled client. Cloning is not needed: a store holds it in an `Arc`.
pub(crate) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    endpoints: Vec<Endpoint>,
    /// The endpoint that answered last; requests start there.
    preferred: AtomicUsize,
    /// Headers sent with every request (credentials): never logged.
    secret_headers: Vec<(HeaderName, HeaderValue)>,
    max_reply_bytes: usize,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field(
                "endpoints",
                &self
                    .endpoints
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            )
            .field("credentials", &!self.secret_headers.is_empty())
            .finish()
    }
}

impl HttpClient {
    /// A client for `endpoints` (`host:port`), over TLS when `tls` is set;
    /// nothing connects until the first request.
    pub(crate) fn new(
        endpoints: &[&str],
        secret_headers: Vec<(HeaderName, HeaderValue)>,
        tls: Option<&crate::TlsConfig>,
    ) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(Error::InvalidArgument(
                "at least one endpoint is needed".into(),
            ));
        }
        let endpoints = endpoints
            .iter()
            .map(|e| Endpoint::parse(e, tls.is_some()))
            .collect::<Result<Vec<_>>>()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        // Long polls and watch streams can be silent for minutes: let TCP
        // notice a peer that is gone.
        connector.set_keepalive(Some(Duration::from_secs(30)));
        connector.set_keepalive_interval(Some(Duration::from_secs(10)));
        connector.set_keepalive_retries(Some(3));
        connector.enforce_http(false);
        let connector = tls_connector(tls, connector)?;
        // Without a timer the pool evicts an idle connection only when a
        // later request looks at it: after a burst, a store kept every
        // connection it had opened, idle, for good.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(HttpClient {
            client,
            endpoints,
            preferred: AtomicUsize::new(0),
            secret_headers,
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
        })
    }

    /// Sends `request`, starting at the endpoint that answered last and
    /// failing over to the next on connection errors, and, for idempotent
    /// requests, on timeouts, broken replies and 5xx answers. An idempotent
    /// request whose connection broke mid-exchange is sent once more to the
    /// same endpoint first (a cut is usually the connection's fault, not the
    /// server's). A write that was sent but whose reply was lost is
    /// [`Error::OutcomeUnknown`].
    pub(crate) async fn send(&self, request: &HttpRequest<'_>) -> Result<HttpReply> {
        let count = self.endpoints.len();
        let path = request_path(request)?;
        let mut index = self.preferred.load(Ordering::Relaxed) % count;
        let mut retry_same = request.idempotent;
        let mut tried = 0;
        let mut last_error;
        loop {
            let is_last = tried + 1 == count;
            match self.send_to(index, request, &path).await {
                Ok(reply) if reply.status.is_server_error() && request.idempotent && !is_last => {
                    tracing::debug!(status = %reply.status, endpoint = index, "server error; trying the next endpoint");
                    last_error = Error::Unreachable {
                        message: format!(
                            "{} answered {}: {}",
                            request.operation,
                            reply.status,
                            reply.excerpt()
                        ),
                        source: None,
                    };
                }
                Ok(reply) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(reply);
                }
                Err(failure) => {
                    tracing::debug!(error = %failure.error, endpoint = index, "request failed");
                    if !failure.nothing_sent && !request.idempotent {
                        return Err(failure.outcome_unknown(request.operation));
                    }
                    let again = failure.broken && retry_same;
                    last_error = failure.error;
                    if again {
                        retry_same = false;
                        continue;
                    }
                }
            }
            tried += 1;
            if tried == count {
                break;
            }
            index = (index + 1) % count;
        }
        Err(last_error)
    }

    /// Opens a streaming exchange: the reply's status, headers and its body
    /// to read as it comes. `timeout` covers the reply's head only. Fails
    /// over like [`HttpClient::send`] while nothing was received.
    pub(crate) async fn open_stream(
        &self,
        request: &HttpRequest<'_>,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        let count = self.endpoints.len();
        let first = self.preferred.load(Ordering::Relaxed) % count;
        let path = request_path(request)?;
        let mut last_error = None;
        for attempt in 0..count {
            let index = (first + attempt) % count;
            let http_request = self.build(index, request, &path)?;
            let head =
                tokio::time::timeout(request.timeout, self.client.request(http_request)).await;
            last_error = Some(match head {
                Ok(Ok(response))
                    if !(response.status().is_server_error() && attempt + 1 < count) =>
                {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(response);
                }
                Ok(Ok(response)) => Error::Unreachable {
                    message: format!("{} answered {}", request.operation, response.status()),
                    source: None,
                },
                Ok(Err(e)) => request_error(request.operation, e),
                Err(_) => Error::Timeout {
                    operation: request.operation,
                    after: request.timeout,
                },
            });
        }
        Err(last_error.unwrap_or_else(|| Error::Unreachable {
            message: "no endpoint answered".into(),
            source: None,
        }))
    }

    /// The request for endpoint `index`: its URI and `Host` header come
    /// from the endpoint's parsed parts, nothing is formatted or parsed.
    fn build(
        &self,
        index: usize,
        request: &HttpRequest<'_>,
        path: &PathAndQuery,
    ) -> Result<Request<Full<Bytes>>> {
        let endpoint = &self.endpoints[index];
        let mut http_request = Request::new(Full::new(request.body.clone()));
        *http_request.method_mut() = request.method.clone();
        *http_request.uri_mut() = endpoint.uri(path.clone())?;
        let headers = http_request.headers_mut();
        // One slot more than we insert: hyper-util looks `Host` up with
        // `entry`, which makes room for a new header before it finds ours,
        // and a full map would be reallocated for it.
        headers.reserve(3 + self.secret_headers.len() + request.headers.len());
        headers.insert(HOST, endpoint.host().clone());
        for (name, value) in self.secret_headers.iter().chain(request.headers) {
            headers.insert(name.clone(), value.clone());
        }
        if !(request.body.is_empty() && request.method == Method::GET) {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(request.body.len()));
        }
        Ok(http_request)
    }

    async fn send_to(
        &self,
        index: usize,
        request: &HttpRequest<'_>,
        path: &PathAndQuery,
    ) -> std::result::Result<HttpReply, Failure> {
        let http_request = self.build(index, request, path).map_err(|error| Failure {
            error,
            nothing_sent: true,
            broken: false,
        })?;
        let started = Instant::now();
        let exchange = async {
            let response = self.client.request(http_request).await.map_err(|e| {
                let nothing_sent = e.is_connect();
                Failure {
                    error: request_error(request.operation, e),
                    nothing_sent,
                    broken: !nothing_sent,
                }
            })?;
            let (parts, body) = response.into_parts();
            // A reply that announces more than the cap is refused before a
            // byte of its body is read.
            let announced = parts
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if announced.is_some_and(|n| n > self.max_reply_bytes as u64) {
                return Err(Failure {
                    error: Error::malformed(format!(
                        "the reply to {} announces {} bytes, more than the {} allowed",
                        request.operation,
                        announced.unwrap_or_default(),
                        self.max_reply_bytes
                    )),
                    nothing_sent: false,
                    broken: false,
                });
            }
            let body = Limited::new(body, self.max_reply_bytes)
                .collect()
                .await
                .map_err(|e| {
                    let error = reply_body_error(request.operation, self.max_reply_bytes, e);
                    Failure {
                        broken: matches!(error, Error::Unreachable { .. }),
                        error,
                        nothing_sent: false,
                    }
                })?
                .to_bytes();
            Ok(HttpReply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        let reply = tokio::time::timeout(request.timeout, exchange)
            .await
            .map_err(|_| Failure {
                error: Error::Timeout {
                    operation: request.operation,
                    after: request.timeout,
                },
                nothing_sent: false,
                broken: false,
            })??;
        tracing::debug!(
            method = %request.method,
            path = request.path,
            status = reply.status.as_u16(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "http"
        );
        Ok(reply)
    }
}

/// A failed exchange: whether the request certainly never left, and whether
/// the connection broke after it did (rather than timing out).
struct Failure {
    error: Error,
    nothing_sent: bool,
    broken: bool,
}

impl Failure {
    /// For a write that left: a broken connection means nobody knows whether
    /// it was applied. A timeout stays a timeout (its doc says the same).
    fn outcome_unknown(self, operation: &'static str) -> Error {
        match self.error {
            Error::Unreachable { message, source } if self.broken => Error::OutcomeUnknown {
                operation,
                message,
                source,
            },
            other => other,
        }
    }
}

/// A failed request: [`Error::Tls`] when TLS is what failed, else
/// [`Error::Unreachable`].
fn request_error(operation: &str, error: hyper_util::client::legacy::Error) -> Error {
    if let Some(message) = crate::tls::tls_failure(&error) {
        return Error::Tls {
            message: format!("{operation}: {message}"),
        };
    }
    Error::Unreachable {
        message: format!("{operation} failed: {}", connection_error(&error)),
        source: Some(std::sync::Arc::new(error)),
    }
}

fn connection_error(error: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error as _;
    let mut text = error.to_string();
    let mut source = error.source();
    let mut unsolicited = false;
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        unsolicited |= cause
            .downcast_ref::<hyper::Error>()
            .is_some_and(|e| e.to_string().contains("unexpected message"));
        source = cause.source();
    }
    if unsolicited {
        text.push_str(UNSOLICITED_REPLY_HINT);
    }
    text
}

/// What a reply sent before any request usually means.
const UNSOLICITED_REPLY_HINT: &str = " (the server answered before it was asked: Consul does \
     so, with a 429, to a client over its limits.http_max_conns_per_client connections)";

fn reply_body_error(
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
    connector: HttpConnector,
) -> Result<HttpsConnector<HttpConnector>> {
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

/// The request's path and query, checked once for all its attempts.
fn request_path(request: &HttpRequest<'_>) -> Result<PathAndQuery> {
    PathAndQuery::try_from(request.path).map_err(|e| {
        Error::InvalidArgument(format!(
            "cannot build the request for {}: {e}",
            request.operation
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short() {
        assert_eq!(excerpt(b"abc"), "abc");
        assert_eq!(excerpt(&[b'x'; 500]).chars().count(), 201);
    }
}
