//! The etcd v3 JSON gateway's shapes: typed requests (so a misspelt field,
//! which the gateway would silently ignore, cannot compile) and tolerant
//! replies (int64 fields arrive as strings; zero values are omitted).

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use super::plain_reply::PlainReply;

use crate::http::HttpReply;
use crate::{Error, KvPair, Result};

/// Bytes as the gateway wants them: padded standard base64.
pub(super) fn b64(bytes: impl AsRef<[u8]>) -> String {
    crate::base64_bytes::encode(bytes.as_ref())
}

/// An int64 that may come as a JSON string or number; absent or `null`
/// means 0. Read by a visitor: no buffering, no allocation.
fn int64<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<i64, D::Error> {
    struct Int64;
    impl serde::de::Visitor<'_> for Int64 {
        type Value = i64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an int64, as a number or a string")
        }

        fn visit_i64<E: serde::de::Error>(self, n: i64) -> std::result::Result<i64, E> {
            Ok(n)
        }

        fn visit_u64<E: serde::de::Error>(self, n: u64) -> std::result::Result<i64, E> {
            i64::try_from(n).map_err(|_| E::custom(format!("{n} is out of the int64 range")))
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> std::result::Result<i64, E> {
            text.parse()
                .map_err(|_| E::custom(format!("{text:?} is not an int64")))
        }

        fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<i64, E> {
            Ok(0)
        }
    }
    deserializer.deserialize_any(Int64)
}

/// Base64 bytes, decoded straight from the reply (no intermediate `String`).
fn base64_bytes<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<u8>, D::Error> {
    struct Base64Bytes;
    impl serde::de::Visitor<'_> for Base64Bytes {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a base64 string")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> std::result::Result<Vec<u8>, E> {
            crate::base64_bytes::decode_vec(text.as_bytes())
                .map_err(|e| E::custom(format!("etcd sent bytes that are not base64: {e}")))
        }

        fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Vec<u8>, E> {
            Ok(Vec::new())
        }
    }
    deserializer.deserialize_any(Base64Bytes)
}

/// A base64 value, as [`Bytes`] (that own exactly the decoded bytes).
fn base64_value<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Bytes, D::Error> {
    base64_bytes(deserializer).map(Bytes::from)
}

// ----- requests -----

#[derive(Debug, Serialize)]
pub(super) struct RangeRequest {
    pub(super) key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) range_end: Option<String>,
    /// 0: the latest revision.
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) revision: i64,
}

#[derive(Debug, Serialize)]
pub(super) struct PutRequest {
    pub(super) key: String,
    pub(super) value: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) lease: i64,
}

#[derive(Debug, Serialize)]
pub(super) struct DeleteRangeRequest {
    pub(super) key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) range_end: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct TxnRequest {
    pub(super) compare: Vec<Compare>,
    pub(super) success: Vec<RequestOp>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) failure: Vec<RequestOp>,
}

/// One txn guard on a key.
#[derive(Debug, Serialize)]
pub(super) struct Compare {
    pub(super) key: String,
    /// `CREATE` or `MOD`.
    pub(super) target: &'static str,
    /// Always `EQUAL` here.
    pub(super) result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) create_revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) mod_revision: Option<String>,
}

impl Compare {
    /// The key does not exist (its create revision is 0).
    pub(super) fn absent(key: String) -> Self {
        Compare {
            key,
            target: "CREATE",
            result: "EQUAL",
            create_revision: Some("0".into()),
            mod_revision: None,
        }
    }

    /// The key was last written at `revision`.
    pub(super) fn modified_at(key: String, revision: u64) -> Self {
        Compare {
            key,
            target: "MOD",
            result: "EQUAL",
            create_revision: None,
            mod_revision: Some(revision.to_string()),
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) enum RequestOp {
    #[serde(rename = "request_put")]
    Put(PutRequest),
    #[serde(rename = "request_delete_range")]
    DeleteRange(DeleteRangeRequest),
}

#[derive(Debug, Serialize)]
pub(super) struct LeaseGrantRequest {
    #[serde(rename = "TTL")]
    pub(super) ttl: String,
}

#[derive(Debug, Serialize)]
pub(super) struct LeaseIdRequest {
    #[serde(rename = "ID")]
    pub(super) id: String,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

// ----- replies -----

#[derive(Debug, Default, Deserialize, PartialEq)]
pub(super) struct Header {
    #[serde(default, deserialize_with = "int64")]
    pub(super) revision: i64,
}

#[derive(Debug, Deserialize, PartialEq)]
pub(super) struct KeyValue {
    /// Decoded from base64 (UTF-8 is checked when it becomes a `String`).
    #[serde(default, deserialize_with = "base64_bytes")]
    pub(super) key: Vec<u8>,
    /// Decoded from base64; absent for an empty value.
    #[serde(default, deserialize_with = "base64_value")]
    pub(super) value: Bytes,
    #[serde(default, deserialize_with = "int64")]
    pub(super) mod_revision: i64,
    #[serde(default, deserialize_with = "int64")]
    pub(super) create_revision: i64,
    #[serde(default, deserialize_with = "int64")]
    pub(super) lease: i64,
}

impl KeyValue {
    pub(super) fn key_text(&self) -> Result<String> {
        std::str::from_utf8(&self.key)
            .map(str::to_owned)
            .map_err(|_| not_utf8())
    }

    pub(super) fn version(&self) -> Result<u64> {
        u64::try_from(self.mod_revision)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| {
                Error::MalformedReply(format!("etcd sent mod_revision {}", self.mod_revision))
            })
    }

    pub(super) fn into_pair(self) -> Result<KvPair> {
        let version = self.version()?;
        Ok(KvPair {
            key: String::from_utf8(self.key).map_err(|_| not_utf8())?,
            value: self.value,
            version,
        })
    }
}

fn not_utf8() -> Error {
    Error::MalformedReply("etcd sent a key that is not UTF-8".into())
}

#[derive(Debug, Deserialize, PartialEq)]
pub(super) struct RangeResponse {
    #[serde(default)]
    pub(super) header: Header,
    #[serde(default)]
    pub(super) kvs: Vec<KeyValue>,
}

#[derive(Debug, Deserialize, PartialEq)]
pub(super) struct HeaderOnly {
    #[serde(default)]
    pub(super) header: Header,
}

#[derive(Debug, Deserialize)]
pub(super) struct DeleteRangeResponse {
    #[serde(default, deserialize_with = "int64")]
    pub(super) deleted: i64,
}

#[derive(Debug, Deserialize, PartialEq)]
pub(super) struct TxnResponse {
    /// Omitted when false.
    #[serde(default)]
    pub(super) succeeded: bool,
}

#[derive(Debug, Deserialize)]
pub(super) struct LeaseGrantResponse {
    #[serde(rename = "ID", default, deserialize_with = "int64")]
    pub(super) id: i64,
    #[serde(rename = "TTL", default, deserialize_with = "int64")]
    pub(super) ttl: i64,
}

impl PlainReply for DeleteRangeResponse {}
impl PlainReply for LeaseGrantResponse {}

/// `/v3/lease/keepalive` answers `{"result": {...}}`.
#[derive(Debug, Deserialize)]
pub(super) struct KeepAliveResponse {
    #[serde(default)]
    pub(super) result: Option<LeaseGrantResponse>,
}

impl PlainReply for KeepAliveResponse {}

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

/// Reads a reply body: by [`PlainReply`]'s fast path when it can, else
/// (or when the fast path gives up) by serde_json.
pub(super) fn parse_reply<T: DeserializeOwned + PlainReply>(
    reply: &HttpReply,
    operation: &str,
) -> Result<T> {
    match T::read_plain(&reply.body) {
        Some(parsed) => Ok(parsed),
        None => parse(reply, operation),
    }
}

/// Parses a JSON reply body with serde_json.
pub(super) fn parse<'a, T: Deserialize<'a>>(reply: &'a HttpReply, operation: &str) -> Result<T> {
    crate::json::from_bytes(&reply.body).map_err(|e| {
        Error::MalformedReply(format!(
            "{operation}: {e} (status {}, body {:?})",
            reply.status.as_u16(),
            reply.excerpt()
        ))
    })
}

/// gRPC status codes that etcd errors carry.
pub(super) mod code {
    pub(crate) const INVALID_ARGUMENT: i32 = 3;
    pub(crate) const PERMISSION_DENIED: i32 = 7;
    pub(crate) const FAILED_PRECONDITION: i32 = 9;
    pub(crate) const OUT_OF_RANGE: i32 = 11;
    pub(crate) const INTERNAL: i32 = 13;
    pub(crate) const UNAVAILABLE: i32 = 14;
    pub(crate) const UNAUTHENTICATED: i32 = 16;
}

/// Turns an error reply into the error it means, by its gRPC code (the HTTP
/// status differs between builds: 412 vs 400 for the same error).
pub(super) fn classify(reply: &HttpReply, operation: &str) -> Error {
    let body: ErrorBody = crate::json::from_bytes(&reply.body).unwrap_or_default();
    let message = if body.message.is_empty() {
        body.error.clone()
    } else {
        body.message.clone()
    };
    let text = if message.is_empty() {
        reply.excerpt()
    } else {
        message
    };
    classify_code(body.code, &text, operation, reply.status.as_u16())
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
        code::INVALID_ARGUMENT | code::OUT_OF_RANGE | code::FAILED_PRECONDITION => {
            if message.contains("request is too large") {
                Error::ValueTooLarge { size: 0, limit: 0 }
            } else {
                Error::InvalidArgument(format!("{operation}: {message}"))
            }
        }
        code::UNAVAILABLE | code::INTERNAL => Error::Unreachable {
            message: format!("{operation}: {message}"),
            source: None,
        },
        _ => Error::MalformedReply(format!(
            "{operation}: status {status}, code {grpc_code}: {message}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_with_omitted_zero_values_decode() {
        let range: RangeResponse =
            serde_json::from_str(r#"{"header":{"revision":"7"},"kvs":[{"key":"YQ==","mod_revision":"5","create_revision":5}]}"#)
                .unwrap();
        assert_eq!(range.header.revision, 7);
        let pair = range.kvs.into_iter().next().unwrap().into_pair().unwrap();
        assert_eq!(
            (pair.key.as_str(), pair.value.len(), pair.version),
            ("a", 0, 5)
        );
        let txn: TxnResponse = serde_json::from_str(r#"{"header":{}}"#).unwrap();
        assert!(!txn.succeeded);
        let empty: RangeResponse = serde_json::from_str(r#"{"header":{"revision":"3"}}"#).unwrap();
        assert!(empty.kvs.is_empty());
    }

    #[test]
    fn requests_serialize_as_the_gateway_expects() {
        let txn = TxnRequest {
            compare: vec![Compare::modified_at(b64("k"), 5)],
            success: vec![RequestOp::Put(PutRequest {
                key: b64("k"),
                value: b64("v"),
                lease: 0,
            })],
            failure: vec![],
        };
        assert_eq!(
            serde_json::to_string(&txn).unwrap(),
            r#"{"compare":[{"key":"aw==","target":"MOD","result":"EQUAL","mod_revision":"5"}],"success":[{"request_put":{"key":"aw==","value":"dg=="}}]}"#
        );
    }

    #[test]
    fn bad_replies_are_typed_errors() {
        assert!(serde_json::from_str::<RangeResponse>(r#"{"header":{"revision":"x"}}"#).is_err());
        // Bad base64 fails the parse itself, which callers map to MalformedReply.
        assert!(serde_json::from_str::<KeyValue>(r#"{"key":"!!","mod_revision":"1"}"#).is_err());
        assert!(serde_json::from_str::<KeyValue>(r#"{"key":"YQ==","mod_revision":1e3}"#).is_err());
        let kv: KeyValue = serde_json::from_str(r#"{"key":"/w==","mod_revision":"1"}"#).unwrap();
        assert!(kv.into_pair().is_err(), "not UTF-8");
        let kv: KeyValue = serde_json::from_str(r#"{"key":"YQ==","mod_revision":"-4"}"#).unwrap();
        assert!(kv.into_pair().is_err());
        assert!(matches!(
            classify_code(7, "permission denied", "get", 403),
            Error::PermissionDenied(_)
        ));
        assert!(matches!(
            classify_code(14, "no leader", "get", 503),
            Error::Unreachable { .. }
        ));
    }
}
