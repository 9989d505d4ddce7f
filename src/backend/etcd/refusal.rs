//! etcd's refusals: the error body it sends, read by its gRPC code into
//! a [`Refusal`] and the [`Error`] it means.

use serde::Deserialize;

use crate::Error;
use crate::http::HttpReply;

/// The error body: `{"error": "...", "code": N, "message": "..."}` (key
/// order differs between builds).
#[derive(Debug, Default, Deserialize)]
pub(super) struct ErrorBody {
    #[serde(default)]
    pub(super) code: i32,
    #[serde(default)]
    pub(super) message: String,
    #[serde(default)]
    pub(super) error: String,
}

/// gRPC status codes that etcd errors carry.
pub(super) mod code {
    pub(crate) const INVALID_ARGUMENT: i32 = 3;
    pub(crate) const NOT_FOUND: i32 = 5;
    pub(crate) const PERMISSION_DENIED: i32 = 7;
    pub(crate) const FAILED_PRECONDITION: i32 = 9;
    pub(crate) const OUT_OF_RANGE: i32 = 11;
    pub(crate) const INTERNAL: i32 = 13;
    pub(crate) const UNAVAILABLE: i32 = 14;
    pub(crate) const UNAUTHENTICATED: i32 = 16;
}

/// What etcd refused, with its gRPC code, before it becomes an [`Error`]:
/// callers that expect a refusal (a lease already gone, a compacted
/// revision) decide by `code`, never by an error's text.
#[derive(Debug)]
pub(super) struct Refusal {
    pub(super) code: i32,
    /// The reply's HTTP status.
    pub(super) status: u16,
    /// etcd's own message.
    pub(super) message: String,
    /// The auth token expired or is unknown: authenticate again.
    pub(super) invalid_token: bool,
    /// What the refusal means to a caller that did not expect it.
    pub(super) error: Error,
}

impl Refusal {
    /// Reads an error reply (`{"error", "code", "message"}`; the HTTP
    /// status differs between builds, 412 vs 400 for the same error).
    pub(super) fn of(reply: &HttpReply, operation: &str) -> Self {
        let body: ErrorBody = serde_json::from_slice(&reply.body).unwrap_or_default();
        let message = [body.message, body.error]
            .into_iter()
            .find(|m| !m.is_empty())
            .unwrap_or_else(|| reply.excerpt());
        Refusal::new(body.code, message, reply.status.as_u16(), operation)
    }

    /// A refusal with etcd's gRPC `code` and `message`, `status` the HTTP
    /// status it came with.
    pub(super) fn new(code: i32, message: String, status: u16, operation: &str) -> Self {
        Refusal {
            code,
            status,
            invalid_token: is_invalid_token(code, &message),
            error: classify_code(code, &message, operation, status),
            message,
        }
    }

    /// etcd may have applied the write it refused so: it proposed it, then
    /// could not confirm it ("request timed out", "leader changed").
    pub(super) fn may_have_applied(&self) -> bool {
        matches!(self.code, code::UNAVAILABLE | code::INTERNAL)
    }

    /// [`Error::OutcomeUnknown`], for a write refused as
    /// [`Refusal::may_have_applied`] says.
    pub(super) fn into_outcome_unknown(self, operation: &'static str) -> Error {
        Error::OutcomeUnknown {
            operation,
            message: format!("etcd answered {}: {}", self.status, self.message),
            source: None,
        }
    }

    /// etcd no longer has the revision asked for.
    pub(super) fn is_compacted(&self) -> bool {
        self.code == code::OUT_OF_RANGE && self.message.contains("compacted")
    }

    /// The revision asked for is ahead of etcd's.
    pub(super) fn is_future_revision(&self) -> bool {
        self.code == code::OUT_OF_RANGE && self.message.contains("future revision")
    }
}

/// True when etcd refused a request because its token is no longer valid.
pub(super) fn is_invalid_token(code: i32, message: &str) -> bool {
    code == code::UNAUTHENTICATED || message.contains("invalid auth token")
}

/// Turns an error reply into the error it means, by its gRPC code.
pub(super) fn classify(reply: &HttpReply, operation: &str) -> Error {
    Refusal::of(reply, operation).error
}

pub(super) fn classify_code(grpc_code: i32, message: &str, operation: &str, status: u16) -> Error {
    match grpc_code {
        code::PERMISSION_DENIED | code::UNAUTHENTICATED => {
            Error::PermissionDenied(format!("{operation}: {message}"))
        }
        code::INVALID_ARGUMENT
            if message.contains("user name is empty")
                || message.contains("authentication failed") =>
        {
            Error::PermissionDenied(format!("{operation}: {message}"))
        }
        _ if message.contains("request is too large") || message.contains("larger than max") => {
            Error::ValueTooLarge {
                // The caller knows the key and the size: see `with_value_size`.
                key: String::new(),
                size: 0,
                limit: size_limit(message),
            }
        }
        code::INVALID_ARGUMENT | code::OUT_OF_RANGE | code::FAILED_PRECONDITION => {
            Error::InvalidArgument(format!("{operation}: {message}"))
        }
        code::UNAVAILABLE | code::INTERNAL => Error::Unreachable {
            message: format!("{operation}: {message}"),
            source: None,
        },
        _ => Error::malformed(format!(
            "{operation}: status {status}, code {grpc_code}: {message}"
        )),
    }
}

/// etcd's request limit: the `M` of gRPC's "larger than max (N vs. M)",
/// else `--max-request-bytes`' default, 1.5 MiB.
fn size_limit(message: &str) -> usize {
    message
        .split(" vs. ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(MAX_REQUEST_BYTES)
}

/// etcd's default `--max-request-bytes`.
pub(super) const MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// A [`Error::ValueTooLarge`] from etcd names neither the key nor the size:
/// they are the request's.
pub(super) fn with_value_size(error: Error, key: &str, size: usize) -> Error {
    match error {
        Error::ValueTooLarge { limit, .. } => Error::ValueTooLarge {
            key: key.to_owned(),
            size,
            limit,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_become_typed_errors() {
        assert!(matches!(
            classify_code(7, "permission denied", "get", 403),
            Error::PermissionDenied(_)
        ));
        assert!(matches!(
            classify_code(14, "no leader", "get", 503),
            Error::Unreachable { .. }
        ));
        assert!(matches!(
            classify_code(3, "etcdserver: request is too large", "put", 400),
            Error::ValueTooLarge {
                limit: MAX_REQUEST_BYTES,
                ..
            }
        ));
        assert!(matches!(
            classify_code(
                8,
                "grpc: received message larger than max (2097200 vs. 2097152)",
                "put",
                429
            ),
            Error::ValueTooLarge { limit: 2097152, .. }
        ));
        assert!(matches!(
            with_value_size(classify_code(3, "request is too large", "put", 400), "k", 9),
            Error::ValueTooLarge { size: 9, ref key, .. } if key == "k"
        ));
    }
}
