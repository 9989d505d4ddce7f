//! The gRPC transport (`?transport=grpc`): etcd's own API, with tonic over
//! one HTTP/2 connection per member (plain or TLS) that every call of the
//! store shares, with one `Watch` stream for all its watches ([`watch`])
//! and one `LeaseKeepAlive` stream for all its leases ([`keep_alive`]), and
//! messages written by hand with prost ([`proto`]; no protoc, no build
//! step). Calls start at the member that answered last and fail over to the
//! next when one cannot be reached (and, for reads and other calls that may
//! run twice, when it answers `Unavailable` or does not answer in time).

mod calls;
mod convert;
mod errors;
mod keep_alive;
mod proto;
mod watch;

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument;

use self::errors::{Failure, Failures, detail, failure, refusal, tls_error, unavailable};
use super::transport::{Reply, Token};
use crate::{Error, Result};

/// The largest reply taken: etcd's own client's limit (`math.MaxInt32`).
const MAX_REPLY: usize = i32::MAX as usize;

/// How often an idle connection is pinged, and how long a ping may go
/// unanswered before the connection counts as broken.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// One member: its address (for errors), its connection, and the streams
/// on it that the store's watches and leases share.
#[derive(Debug)]
struct Member {
    address: String,
    /// How to reach it: made when the store is, so that bad settings fail
    /// there; the connection itself is made on first use, inside the
    /// runtime (a store can be made outside one).
    connect: Connect,
    channel: OnceLock<Channel>,
    watches: watch::SharedWatches,
    keep_alives: keep_alive::SharedKeepAlives,
}

/// etcd's calls over gRPC.
#[derive(Debug)]
pub(super) struct Grpc {
    members: Vec<Member>,
    /// The member that answered last.
    preferred: AtomicUsize,
    timeout: Duration,
}

impl Grpc {
    /// A transport to `endpoints` (`host:port` each), over TLS when `tls`
    /// is set; connects on first use.
    pub(super) fn new(
        endpoints: &[&str],
        timeout: Duration,
        tls: Option<&crate::TlsConfig>,
    ) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(Error::InvalidArgument(
                "at least one endpoint is needed".into(),
            ));
        }
        let members = endpoints
            .iter()
            .map(|address| {
                // The same checks as every HTTP endpoint: host:port only.
                crate::http::Endpoint::parse(address, tls.is_some())?;
                let scheme = if tls.is_some() { "https" } else { "http" };
                let endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
                    .map_err(|e| Error::InvalidArgument(format!("endpoint {address:?}: {e}")))?
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(KEEP_ALIVE)
                    .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
                    .keep_alive_while_idle(true);
                Ok(Member {
                    address: format!("{scheme}://{address}"),
                    connect: Connect::new(endpoint, tls, timeout)?,
                    channel: OnceLock::new(),
                    watches: watch::SharedWatches::default(),
                    keep_alives: keep_alive::SharedKeepAlives::default(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Grpc {
            members,
            preferred: AtomicUsize::new(0),
            timeout,
        })
    }

    /// The members in the order a call tries them: the preferred first.
    fn in_order(&self) -> impl Iterator<Item = (usize, &Member)> {
        let start = self.preferred.load(Ordering::Relaxed);
        let count = self.members.len();
        (0..count).map(move |i| {
            let index = (start + i) % count;
            (index, &self.members[index])
        })
    }

    /// A gRPC client on `channel`, taking replies of any size.
    fn client(channel: &Channel) -> tonic::client::Grpc<Channel> {
        tonic::client::Grpc::new(channel.clone())
            .max_decoding_message_size(MAX_REPLY)
            .max_encoding_message_size(MAX_REPLY)
    }

    /// One unary call of `path`.
    async fn unary<Q, R>(
        &self,
        path: &'static str,
        request: Q,
        token: Token,
        idempotent: bool,
        operation: &'static str,
    ) -> Reply<R>
    where
        Q: prost::Message + Clone + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        self.on_members(idempotent, operation, |member| {
            let call = request_with(request.clone(), &token, self.timeout);
            async move {
                let mut client = Self::client(member.channel());
                if let Err(e) = client.ready().await {
                    return match tls_error(&e, operation, &member.address) {
                        Some(error) => Attempt::Failed(error),
                        None => Attempt::NotSent(e.to_string()),
                    };
                }
                let codec = tonic_prost::ProstCodec::<Q, R>::default();
                match call {
                    Err(error) => Attempt::Failed(error),
                    Ok(call) => match client
                        .unary(call, PathAndQuery::from_static(path), codec)
                        .await
                    {
                        Ok(response) => Attempt::Answered(response.into_inner()),
                        Err(status) => Attempt::Refused(status),
                    },
                }
            }
        })
        .await
    }

    /// Makes `attempt` on the members in turn until one answers, fails
    /// over as the module says, and names every member that failed.
    async fn on_members<'a, R, F, Fut>(
        &'a self,
        idempotent: bool,
        operation: &'static str,
        attempt: F,
    ) -> Reply<R>
    where
        F: Fn(&'a Member) -> Fut,
        Fut: Future<Output = Attempt<R>>,
    {
        let mut failures = Vec::new();
        // Whether every member took the connection and then broke it: a
        // server there that does not speak HTTP/2 gRPC, most likely.
        let mut all_broke = true;
        for (index, member) in self.in_order() {
            // A call whose connection broke under it goes to the same
            // member once more (a cut is usually the connection's fault);
            // one the connection never took goes again, a few times.
            let (mut broken_retries, mut unsent_retries) = (1, 3);
            loop {
                let span = tracing::debug_span!("etcd_grpc", operation, member = %member.address);
                let outcome = tokio::time::timeout(self.timeout, attempt(member))
                    .instrument(span)
                    .await;
                let status = match outcome {
                    Ok(Attempt::Answered(reply)) => {
                        self.preferred.store(index, Ordering::Relaxed);
                        return Ok(Ok(reply));
                    }
                    Ok(Attempt::NotSent(why)) => {
                        failures.push(format!("{}: {why}", member.address));
                        all_broke = false;
                        break;
                    }
                    Ok(Attempt::Failed(error)) => return Err(error),
                    Ok(Attempt::Refused(status)) => status,
                    Err(_) if idempotent => {
                        failures.push(format!("{}: timed out", member.address));
                        all_broke = false;
                        break;
                    }
                    Err(_) => {
                        return Err(Error::Timeout {
                            operation,
                            after: self.timeout,
                        });
                    }
                };
                if let Some(error) = tls_error(&status, operation, &member.address) {
                    return Err(error);
                }
                let why = format!("{}: {}", member.address, detail(&status));
                let kind = failure(&status);
                all_broke &= matches!(kind, Failure::Broken | Failure::NotSent);
                match kind {
                    // etcd's own answer; another member may do better only
                    // when this one could not serve it.
                    Failure::Refused if idempotent && status.code() == tonic::Code::Unavailable => {
                        failures.push(why);
                        break;
                    }
                    // etcd may have proposed a write it then could not
                    // confirm ("leader changed", "request timed out").
                    Failure::Refused => {
                        let refusal = refusal(&status, operation);
                        if !idempotent && refusal.may_have_applied() {
                            return Err(Error::OutcomeUnknown {
                                operation,
                                message: why,
                                source: Some(std::sync::Arc::new(status)),
                            });
                        }
                        return Ok(Err(refusal));
                    }
                    Failure::NoConnection => {
                        failures.push(why);
                        break;
                    }
                    Failure::NotSent if unsent_retries > 0 => {
                        unsent_retries -= 1;
                        // Time for the channel to see its connection gone.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Failure::NotSent => {
                        failures.push(why);
                        break;
                    }
                    Failure::Broken if idempotent && broken_retries > 0 => broken_retries -= 1,
                    Failure::Broken if idempotent => {
                        failures.push(why);
                        break;
                    }
                    Failure::TimedOut if idempotent => {
                        failures.push(why);
                        break;
                    }
                    Failure::TimedOut => {
                        return Err(Error::Timeout {
                            operation,
                            after: self.timeout,
                        });
                    }
                    Failure::Broken => {
                        return Err(Error::OutcomeUnknown {
                            operation,
                            message: why,
                            source: Some(std::sync::Arc::new(status)),
                        });
                    }
                }
            }
        }
        Err(self.none_answered(operation, failures, all_broke))
    }

    /// [`Error::Unreachable`] naming every member, each member's failure
    /// in its source.
    fn none_answered(&self, operation: &str, failures: Vec<String>, all_broke: bool) -> Error {
        let members: Vec<&str> = self.members.iter().map(|m| m.address.as_str()).collect();
        Error::Unreachable {
            message: format!(
                "{operation}: no etcd member answered ({})",
                members.join(", ")
            ),
            source: Some(std::sync::Arc::new(Failures {
                failures,
                all_broke,
            })),
        }
    }
}

/// `message` as a call: its deadline, and the token etcd's gRPC API reads
/// (`token` metadata).
fn request_with<M>(message: M, token: &Token, timeout: Duration) -> Result<tonic::Request<M>> {
    let mut call = tonic::Request::new(message);
    call.set_timeout(timeout);
    if let Some(token) = token {
        let mut value = MetadataValue::try_from(token.as_bytes())
            .map_err(|_| Error::malformed("etcd sent a token that is not a metadata value"))?;
        value.set_sensitive(true);
        call.metadata_mut().insert("token", value);
    }
    Ok(call)
}

/// The next message of a stream, once it is open (never before).
async fn next_message<M: prost::Message + Default + 'static>(
    replies: &mut Option<tonic::Streaming<M>>,
) -> std::result::Result<Option<M>, tonic::Status> {
    match replies {
        Some(replies) => replies.message().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`; never wakes without one.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// How one member took a call.
enum Attempt<R> {
    Answered(R),
    /// No connection: nothing was sent.
    NotSent(String),
    Refused(tonic::Status),
    /// Nothing to send (a token that cannot be metadata).
    Failed(Error),
}

/// How a member is reached: plain HTTP/2, or HTTP/2 over TLS.
#[derive(Debug)]
enum Connect {
    Plain(Endpoint),
    #[cfg(feature = "tls")]
    Tls(
        Endpoint,
        hyper_timeout::TimeoutConnector<
            hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        >,
    ),
}

impl Connect {
    /// `endpoint`, over TLS as `tls` says.
    /// A connect (with its name lookup and TLS handshake) may take half a
    /// call's timeout, so that a member that drops connection attempts
    /// leaves time for the next. Set on the connector itself: tonic's own
    /// connect timeout would wrap a TLS connector outside its
    /// `ConnectError`, and a connect that timed out would read as a call
    /// cut off after it was sent.
    fn new(endpoint: Endpoint, tls: Option<&crate::TlsConfig>, timeout: Duration) -> Result<Self> {
        match tls {
            None => Ok(Connect::Plain(endpoint.connect_timeout(timeout / 2))),
            #[cfg(feature = "tls")]
            Some(tls) => {
                let tls = crate::http::tls::h2_connector(tls, timeout / 2)?;
                let mut connector = hyper_timeout::TimeoutConnector::new(tls);
                connector.set_connect_timeout(Some(timeout / 2));
                Ok(Connect::Tls(endpoint, connector))
            }
            #[cfg(not(feature = "tls"))]
            Some(_) => {
                let _ = timeout;
                Err(Error::Unsupported {
                    backend: "etcd",
                    what: "TLS: this build of kvmesh left it out: enable the `tls` cargo feature"
                        .into(),
                })
            }
        }
    }

    /// The connection, made on first use (it needs a runtime).
    fn channel(&self) -> Channel {
        match self {
            Connect::Plain(endpoint) => endpoint.connect_lazy(),
            #[cfg(feature = "tls")]
            Connect::Tls(endpoint, connector) => {
                endpoint.connect_with_connector_lazy(connector.clone())
            }
        }
    }
}

impl Member {
    /// The member's one connection.
    fn channel(&self) -> &Channel {
        self.channel.get_or_init(|| self.connect.channel())
    }
}

#[cfg(test)]
mod tests;
