//! The one pooled HTTP/1.1 client that a network store, its clones and all
//! of its watches share, with endpoint failover, bounded replies and a
//! bounded number of connections.

mod bounded;
mod connect;
mod endpoint;
mod reachable;
mod reply;
#[cfg(feature = "etcd")]
mod stream;
#[cfg(feature = "tls")]
pub(crate) mod tls;

pub(crate) use self::reply::HttpReply;
#[cfg(any(feature = "etcd", test))]
pub(crate) use self::reply::excerpt;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_LENGTH, HOST, HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Request, StatusCode};

use self::connect::{Pool, reply_body_error, request_error};
pub(crate) use self::endpoint::Endpoint;
use crate::backoff::Backoff;
use crate::{Error, Result};

/// The most connections a store holds to one endpoint for its ordinary
/// requests; requests beyond it wait for one of them to come free.
/// Long polls and watch streams have connections of their own, which each
/// backend bounds ([`ConnectionLimits`]).
pub(crate) const MAX_REQUEST_CONNECTIONS: usize = 48;

/// How often an idempotent request refused with a 429 (overloaded) is sent
/// again, with backoff, before it fails with [`Error::Overloaded`].
const OVERLOAD_RETRIES: u32 = 4;

/// How many connections a client may hold to each endpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// For ordinary requests.
    pub(crate) requests: usize,
    /// For long polls and watch streams (`HttpRequest::long_lived`,
    /// [`HttpClient::open_stream`]).
    pub(crate) long_lived: usize,
}

/// Replies larger than this are refused rather than buffered.
pub(crate) const DEFAULT_MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;

/// What a caller sends; the client picks the endpoint.
#[derive(Debug)]
pub(crate) struct HttpRequest<'a> {
    pub(crate) method: Method,
    /// Path and query, already percent-encoded, starting with `/`.
    pub(crate) path: &'a str,
    pub(crate) body: Bytes,
    /// Safe to send again after a failure that may have reached the server:
    /// reads, and writes whose second run nobody could tell from the first.
    /// Never a plain put or delete, whose second run would undo a write
    /// made between the two.
    pub(crate) idempotent: bool,
    pub(crate) timeout: Duration,
    /// What is being done, for errors and traces (never a secret).
    pub(crate) operation: &'static str,
    /// Headers of this request only (credentials: never logged).
    pub(crate) headers: &'a [(HeaderName, HeaderValue)],
    /// A long poll, held open by the server: it gets a connection of the
    /// long-lived pool, never one that ordinary requests wait for.
    pub(crate) long_lived: bool,
}

/// The pooled client. Cloning is not needed: a store holds it in an `Arc`.
pub(crate) struct HttpClient {
    requests: Pool,
    long_lived: Pool,
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
        limits: ConnectionLimits,
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
        Ok(HttpClient {
            requests: connect::pool(tls, limits.requests)?,
            long_lived: connect::pool(tls, limits.long_lived)?,
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
    ///
    /// A 429 (the server is overloaded, or this host holds too many
    /// connections to it) is retried with backoff when the request is
    /// idempotent, and is otherwise [`Error::Overloaded`].
    pub(crate) async fn send(&self, request: &HttpRequest<'_>) -> Result<HttpReply> {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        let mut retries = 0;
        loop {
            let reply = self.send_once(request).await?;
            if reply.status != StatusCode::TOO_MANY_REQUESTS {
                return Ok(reply);
            }
            // etcd's gateway answers 429 to a request too large as well:
            // only a request that may run twice goes again.
            if !request.idempotent || retries == OVERLOAD_RETRIES {
                return Err(Error::Overloaded {
                    operation: request.operation,
                    message: format!("{} answered 429: {}", request.operation, reply.excerpt()),
                });
            }
            retries += 1;
            let delay = backoff.next_delay();
            tracing::debug!(?delay, "the server answered 429; trying again");
            tokio::time::sleep(delay).await;
        }
    }

    async fn send_once(&self, request: &HttpRequest<'_>) -> Result<HttpReply> {
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
                            "{} answered {} to {}: {}",
                            self.endpoints[index],
                            reply.status,
                            request.operation,
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
            let pool = if request.long_lived {
                &self.long_lived
            } else {
                &self.requests
            };
            let response = pool.request(http_request).await.map_err(|e| {
                let nothing_sent = e.is_connect();
                Failure {
                    error: request_error(request.operation, &self.endpoints[index], e),
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
                    let error = reply_body_error(
                        request.operation,
                        &self.endpoints[index],
                        self.max_reply_bytes,
                        e,
                    );
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
