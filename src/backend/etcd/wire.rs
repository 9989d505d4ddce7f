//! etcd's messages that kvmesh sends and reads (named as in etcd's
//! `rpc.proto` and `kv.proto`), as every transport hands them over: typed
//! requests, serialized the way the v3 JSON gateway reads them (so a
//! misspelt field, which the gateway would silently ignore, cannot compile;
//! bytes as base64, int64 as strings), and tolerant replies (int64 fields
//! arrive as strings; zero values are omitted).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub(super) use self::json::int64;
use self::json::{base64, base64_some, int64_text, int64_text_some};
use crate::{Error, KvPair, Result};

mod json;

/// A key or value as a request carries it.
pub(super) fn bytes(bytes: impl AsRef<[u8]>) -> Bytes {
    Bytes::copy_from_slice(bytes.as_ref())
}

// ----- requests -----

#[derive(Debug, Default, Serialize)]
pub(super) struct RangeRequest {
    #[serde(serialize_with = "base64")]
    pub(super) key: Bytes,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "base64_some"
    )]
    pub(super) range_end: Option<Bytes>,
    /// 0: the latest revision.
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) revision: i64,
    /// 0: every key in the range.
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) limit: i64,
    /// By `sort_target`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) sort_order: Option<SortOrder>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) sort_target: Option<SortTarget>,
    /// 0: no bound; else only keys created at or below this revision.
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) max_create_revision: i64,
}

/// `RangeRequest.SortOrder` (the values are the protobuf enum's).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum SortOrder {
    Ascend = 1,
    Descend = 2,
}

/// `RangeRequest.SortTarget` (the one kvmesh sorts by).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum SortTarget {
    Create = 2,
}

#[derive(Debug, Serialize)]
pub(super) struct PutRequest {
    #[serde(serialize_with = "base64")]
    pub(super) key: Bytes,
    #[serde(serialize_with = "base64")]
    pub(super) value: Bytes,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) lease: i64,
    /// Ask for the value being replaced (to learn its lease).
    #[serde(skip_serializing_if = "is_false")]
    pub(super) prev_kv: bool,
}

#[derive(Debug, Serialize)]
pub(super) struct DeleteRangeRequest {
    #[serde(serialize_with = "base64")]
    pub(super) key: Bytes,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "base64_some"
    )]
    pub(super) range_end: Option<Bytes>,
    /// Ask for the deleted values (to learn their leases).
    #[serde(skip_serializing_if = "is_false")]
    pub(super) prev_kv: bool,
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
    #[serde(serialize_with = "base64")]
    pub(super) key: Bytes,
    pub(super) target: CompareTarget,
    pub(super) result: CompareResult,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "int64_text_some"
    )]
    pub(super) create_revision: Option<i64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "int64_text_some"
    )]
    pub(super) mod_revision: Option<i64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "int64_text_some"
    )]
    pub(super) lease: Option<i64>,
}

/// `Compare.CompareTarget` (those kvmesh compares).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum CompareTarget {
    Create = 1,
    Mod = 2,
    Lease = 4,
}

/// `Compare.CompareResult` (those kvmesh uses).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum CompareResult {
    Equal = 0,
    NotEqual = 3,
}

impl Compare {
    /// The key does not exist (its create revision is 0).
    pub(super) fn absent(key: Bytes) -> Self {
        Compare {
            key,
            target: CompareTarget::Create,
            result: CompareResult::Equal,
            create_revision: Some(0),
            mod_revision: None,
            lease: None,
        }
    }

    /// The key is attached to `lease`.
    pub(super) fn leased_by(key: Bytes, lease: i64) -> Self {
        Compare {
            key,
            target: CompareTarget::Lease,
            result: CompareResult::Equal,
            create_revision: None,
            mod_revision: None,
            lease: Some(lease),
        }
    }

    /// The key exists (its create revision is not 0).
    pub(super) fn present(key: Bytes) -> Self {
        Compare {
            result: CompareResult::NotEqual,
            ..Compare::absent(key)
        }
    }

    /// The key exists and was created at `revision`.
    pub(super) fn created_at(key: Bytes, revision: u64) -> Self {
        Compare {
            create_revision: Some(int64_of(revision)),
            ..Compare::absent(key)
        }
    }

    /// The key was last written at `revision`.
    pub(super) fn modified_at(key: Bytes, revision: u64) -> Self {
        Compare {
            key,
            target: CompareTarget::Mod,
            result: CompareResult::Equal,
            create_revision: None,
            mod_revision: Some(int64_of(revision)),
            lease: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) enum RequestOp {
    #[serde(rename = "request_put")]
    Put(PutRequest),
    #[serde(rename = "request_delete_range")]
    DeleteRange(DeleteRangeRequest),
    #[serde(rename = "request_range")]
    Range(RangeRequest),
}

#[derive(Debug, Serialize)]
pub(super) struct LeaseGrantRequest {
    /// Seconds.
    #[serde(rename = "TTL", serialize_with = "int64_text")]
    pub(super) ttl: i64,
}

/// The request of `LeaseRevoke` and of one `LeaseKeepAlive`.
#[derive(Debug, Serialize)]
pub(super) struct LeaseIdRequest {
    #[serde(rename = "ID", serialize_with = "int64_text")]
    pub(super) id: i64,
}

/// A version as etcd's int64 revision (versions come from etcd's revisions,
/// so one above `i64::MAX` matches nothing etcd has).
fn int64_of(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

// ----- replies -----

#[derive(Debug, Default, Deserialize, PartialEq)]
pub(super) struct Header {
    #[serde(default, deserialize_with = "int64")]
    pub(super) revision: i64,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
pub(super) struct KeyValue {
    /// Decoded from base64 (UTF-8 is checked when it becomes a `String`).
    #[serde(default, deserialize_with = "crate::base64_bytes::bytes")]
    pub(super) key: Bytes,
    /// Decoded from base64; absent for an empty value.
    #[serde(default, deserialize_with = "crate::base64_bytes::bytes")]
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
                Error::malformed(format!("etcd sent mod_revision {}", self.mod_revision))
            })
    }

    pub(super) fn into_pair(self) -> Result<KvPair> {
        let version = self.version()?;
        Ok(KvPair {
            key: self.key_text()?,
            value: self.value,
            version,
        })
    }
}

fn not_utf8() -> Error {
    Error::malformed("etcd sent a key that is not UTF-8")
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

#[derive(Debug, Default, Deserialize, PartialEq)]
pub(super) struct PutResponse {
    #[serde(default)]
    pub(super) header: Header,
    /// Present when asked for and the key existed.
    #[serde(default)]
    pub(super) prev_kv: Option<KeyValue>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
pub(super) struct DeleteRangeResponse {
    #[serde(default, deserialize_with = "int64")]
    pub(super) deleted: i64,
    /// Present when asked for.
    #[serde(default)]
    pub(super) prev_kvs: Vec<KeyValue>,
}

#[derive(Debug, Deserialize, PartialEq)]
pub(super) struct TxnResponse {
    #[serde(default)]
    pub(super) header: Header,
    /// Omitted when false.
    #[serde(default)]
    pub(super) succeeded: bool,
    /// One per operation of the branch that ran.
    #[serde(default)]
    pub(super) responses: Vec<ResponseOp>,
}

/// One operation's reply inside a txn.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub(super) struct ResponseOp {
    #[serde(default)]
    pub(super) response_put: Option<PutResponse>,
    #[serde(default)]
    pub(super) response_delete_range: Option<DeleteRangeResponse>,
    #[serde(default)]
    pub(super) response_range: Option<RangeResponse>,
}

#[derive(Debug, Deserialize)]
pub(super) struct LeaseGrantResponse {
    #[serde(rename = "ID", default, deserialize_with = "int64")]
    pub(super) id: i64,
    #[serde(rename = "TTL", default, deserialize_with = "int64")]
    pub(super) ttl: i64,
}

/// `/v3/lease/keepalive` answers `{"result": {...}}`.
#[derive(Debug, Deserialize)]
pub(super) struct KeepAliveResponse {
    #[serde(default)]
    pub(super) result: Option<LeaseGrantResponse>,
}

mod watch;
pub(super) use watch::{WatchCreateRequest, WatchEvent, WatchRequest, WatchResponse};

#[cfg(test)]
mod tests;
