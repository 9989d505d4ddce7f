//! Consul's JSON shapes, and the classification of its replies.

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::HeaderName;
use serde::{Deserialize, Serialize};

use crate::http::HttpReply;
use crate::{Error, Result};

/// One entry of a `GET /v1/kv/...` reply; kept as [`Entries`].
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct KvEntry {
    pub(super) key: String,
    /// Standard base64 on the wire, decoded while parsing; `null` for an
    /// empty value.
    #[serde(default, deserialize_with = "crate::base64_bytes::optional")]
    pub(super) value: Option<Bytes>,
    pub(super) modify_index: u64,
    /// Absent unless the key is held by a session.
    #[serde(default)]
    pub(super) session: Option<String>,
    #[serde(default)]
    pub(super) flags: u64,
}

/// `PUT /v1/session/create` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SessionCreate<'a> {
    pub(super) name: &'a str,
    /// A Go duration, e.g. `15000ms`.
    #[serde(rename = "TTL")]
    pub(super) ttl: String,
    /// `release` (locks) or `delete` (TTL keys).
    pub(super) behavior: &'a str,
    pub(super) lock_delay: &'a str,
}

/// `PUT /v1/session/create` reply.
#[derive(Debug, Deserialize)]
pub(super) struct SessionCreated {
    #[serde(rename = "ID")]
    pub(super) id: String,
}

/// One session of a `GET /v1/session/info/<id>` reply.
#[derive(Debug, Deserialize)]
pub(super) struct SessionInfo {
    #[serde(rename = "Name", default)]
    pub(super) name: String,
}

/// Parses the `true` / `false` that Consul's KV writes answer.
pub(super) fn parse_bool(reply: &HttpReply, operation: &str) -> Result<bool> {
    match reply.body.trim_ascii() {
        b"true" => Ok(true),
        b"false" => Ok(false),
        _ => Err(Error::malformed(format!(
            "{operation}: expected true or false, got {:?}",
            reply.excerpt()
        ))),
    }
}

/// `X-Consul-Index`, which every KV and session read carries.
pub(super) fn consul_index(reply: &HttpReply) -> Result<u64> {
    static X_CONSUL_INDEX: HeaderName = HeaderName::from_static("x-consul-index");
    let text = reply
        .header(&X_CONSUL_INDEX)
        .ok_or_else(|| Error::malformed("the reply has no X-Consul-Index header"))?;
    text.parse()
        .map_err(|_| Error::malformed(format!("X-Consul-Index {text:?} is not a number")))
}

/// Turns a non-success reply into the error it means. `key` is the key the
/// request was about, if any.
pub(super) fn classify(reply: &HttpReply, operation: &str, key: Option<&str>) -> Error {
    let body = reply.excerpt();
    let status = reply.status;
    if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
        return Error::PermissionDenied(format!("{operation}: {body}"));
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        let limit = body
            .split("max size: ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(512 * 1024);
        let size = body
            .split("body(")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        return Error::ValueTooLarge {
            key: key.unwrap_or_default().to_owned(),
            size,
            limit,
        };
    }
    if let Some(key) = key
        && (body.contains("invalid key name")
            || (status == StatusCode::BAD_REQUEST && body.is_empty()))
    {
        return Error::invalid_key(key, format!("Consul refused it: {body}"));
    }
    if body.contains("Invalid Session TTL") {
        return Error::InvalidArgument(format!("{operation}: Consul refused the TTL: {body}"));
    }
    if status.is_server_error() {
        return Error::Unreachable {
            message: format!("{operation}: Consul answered {}: {body}", status.as_u16()),
            source: None,
        };
    }
    Error::malformed(format!(
        "{operation}: unexpected status {}: {body}",
        status.as_u16()
    ))
}

/// The reply to a write of a key when it is a 200, else the error it
/// means. A 5xx other than "no leader" ("leadership lost while committing
/// log", an RPC cut short) may come after the write was applied: it is
/// [`Error::OutcomeUnknown`], never an error that invites sending it again.
pub(super) fn written(
    reply: HttpReply,
    operation: &'static str,
    key: Option<&str>,
) -> Result<HttpReply> {
    if reply.status == StatusCode::OK {
        return Ok(reply);
    }
    let no_leader = String::from_utf8_lossy(&reply.body).contains("No cluster leader");
    if reply.status.is_server_error() && !no_leader {
        return Err(Error::OutcomeUnknown {
            operation,
            message: format!(
                "Consul answered {}: {}",
                reply.status.as_u16(),
                reply.excerpt()
            ),
            source: None,
        });
    }
    Err(classify(&reply, operation, key))
}

#[cfg(test)]
mod tests {
    use super::super::entries::Entries;
    use super::*;

    fn reply(status: u16, body: &'static str) -> HttpReply {
        HttpReply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: Default::default(),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn entries_decode_null_values_and_large_indexes() {
        let entries: Vec<KvEntry> = serde_json::from_str(
            r#"[{"LockIndex":0,"Key":"k","Flags":3304740253564472344,"Value":null,"CreateIndex":1,"ModifyIndex":18446744073709551615}]"#,
        )
        .unwrap();
        let pair = Entries::from(entries).into_first().unwrap().unwrap();
        assert_eq!(pair.value, Bytes::new());
        assert_eq!(pair.version, u64::MAX);
    }

    #[test]
    fn values_decode_whether_escaped_or_absent() {
        // `/` may be escaped in JSON; the value is the same.
        let entries: Vec<KvEntry> = serde_json::from_str(
            r#"[{"Key":"a","Value":"Pz8\/Pw==","ModifyIndex":2},{"Key":"b","ModifyIndex":3}]"#,
        )
        .unwrap();
        let pairs = Entries::from(entries).into_sorted_pairs(|_| true).unwrap();
        assert_eq!(pairs[0].value, Bytes::from_static(b"????"));
        assert_eq!(pairs[1].value, Bytes::new());
    }

    #[test]
    fn bad_replies_are_typed() {
        let too_large = reply(
            413,
            "Request body(600000 bytes) too large, max size: 524288 bytes. See https://example/",
        );
        assert!(matches!(
            classify(&too_large, "put", Some("k")),
            Error::ValueTooLarge {
                size: 600000,
                limit: 524288,
                ..
            }
        ));
        assert!(matches!(
            classify(&reply(403, "ACL not found"), "get", None),
            Error::PermissionDenied(_)
        ));
        assert!(matches!(
            classify(
                &reply(
                    500,
                    "invalid key name, leading/trailing spaces are not allowed"
                ),
                "put",
                Some(" k")
            ),
            Error::InvalidKey { .. }
        ));
        assert!(matches!(
            classify(
                &reply(
                    500,
                    "Invalid Session TTL '500000000', must be between [1s=24h0m0s]"
                ),
                "ttl",
                None
            ),
            Error::InvalidArgument(_)
        ));
        assert!(matches!(
            classify(&reply(500, "No cluster leader"), "get", None),
            Error::Unreachable { .. }
        ));
        assert!(matches!(
            written(reply(500, "No cluster leader"), "put", None),
            Err(Error::Unreachable { .. })
        ));
        assert!(matches!(
            written(
                reply(500, "leadership lost while committing log"),
                "put",
                None
            ),
            Err(Error::OutcomeUnknown { .. })
        ));
        assert!(written(reply(200, "true"), "put", None).is_ok());
        assert!(parse_bool(&reply(200, "maybe"), "put").is_err());
        let garbage = reply(200, "[{\"Key\":");
        assert!(matches!(
            garbage.json::<Vec<KvEntry>>("get"),
            Err(Error::MalformedReply { .. })
        ));
    }
}
