//! How a gRPC call that got no answer failed, in kvmesh's terms: etcd's
//! own refusals (by their gRPC code, as the gateway's are read), a member
//! never reached, a connection that broke under a call, TLS.

use crate::Error;
use crate::backend::etcd::refusal::Refusal;

/// What each member did instead of answering.
#[derive(Debug)]
pub(super) struct Failures {
    pub(super) failures: Vec<String>,
    /// Every member took the connection and broke the exchange: what
    /// answers there may not speak HTTP/2 gRPC.
    pub(super) all_broke: bool,
}

impl std::fmt::Display for Failures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.failures.join("; "))
    }
}

impl std::error::Error for Failures {}

/// A status's message with the causes tonic keeps beside it.
pub(super) fn detail(status: &tonic::Status) -> String {
    let mut text = status.message().to_owned();
    let mut last = text.clone();
    let mut cause = std::error::Error::source(status);
    while let Some(error) = cause {
        let piece = error.to_string();
        if piece != last {
            text.push_str(": ");
            text.push_str(&piece);
        }
        last = piece;
        cause = error.source();
    }
    text
}

/// How a call that got no answer failed.
pub(super) enum Failure {
    /// etcd answered with an error status.
    Refused,
    /// No connection to the member: nothing was sent.
    NoConnection,
    /// The connection closed before it took the call (hyper cancels a
    /// request it never sent): safe to send again, on a new connection.
    NotSent,
    /// The connection broke with the call on it: it may have been applied.
    Broken,
    /// tonic's own deadline (the call's, sent as `grpc-timeout`) passed:
    /// as uncertain as [`Failure::Broken`], reported as a timeout.
    TimedOut,
}

pub(super) fn failure(status: &tonic::Status) -> Failure {
    // A status etcd sent carries no source; one tonic made from a
    // transport error does.
    let Some(mut cause) = std::error::Error::source(status) else {
        return Failure::Refused;
    };
    loop {
        // tonic wraps whatever the connector failed with (a refused or
        // timed-out connect, a name it could not resolve, a TLS handshake)
        // in a ConnectError: a connection never made, nothing sent on it.
        if cause.is::<tonic::ConnectError>() {
            return Failure::NoConnection;
        }
        if cause
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_canceled)
        {
            return Failure::NotSent;
        }
        if cause.is::<tonic::TimeoutExpired>() {
            return Failure::TimedOut;
        }
        match cause.source() {
            Some(next) => cause = next,
            None => return Failure::Broken,
        }
    }
}

/// The member could not serve the call (down, no leader, the connection
/// broke): another may.
pub(super) fn unavailable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    )
}

/// The TLS failure among `error`'s causes, as [`Error::Tls`] naming the
/// call and the member.
#[cfg(feature = "tls")]
pub(super) fn tls_error(
    error: &(dyn std::error::Error + 'static),
    operation: &str,
    member: &str,
) -> Option<Error> {
    crate::http::tls::tls_failure(error).map(|failure| Error::Tls {
        message: format!("{operation} to {member}: {failure}"),
    })
}

#[cfg(not(feature = "tls"))]
pub(super) fn tls_error(_: &(dyn std::error::Error + 'static), _: &str, _: &str) -> Option<Error> {
    None
}

/// What etcd refused, as the gateway's refusals are read.
pub(super) fn refusal(status: &tonic::Status, operation: &str) -> Refusal {
    Refusal::new(
        status.code() as i32,
        status.message().to_owned(),
        200,
        operation,
    )
}
