//! A watch's messages: the create request, and its replies.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::json::{base64, base64_some, int64, int64_text};
use super::{Header, KeyValue};

/// The first message of a watch stream.
#[derive(Debug, Serialize)]
pub(crate) struct WatchRequest<'a> {
    pub(crate) create_request: &'a WatchCreateRequest,
}

#[derive(Debug, Serialize)]
pub(crate) struct WatchCreateRequest {
    #[serde(serialize_with = "base64")]
    pub(crate) key: Bytes,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "base64_some"
    )]
    pub(crate) range_end: Option<Bytes>,
    #[serde(serialize_with = "int64_text")]
    pub(crate) start_revision: i64,
    pub(crate) progress_notify: bool,
}

/// One reply of a watch: created, events, a progress notification, or
/// canceled.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub(crate) struct WatchResponse {
    #[serde(default)]
    pub(crate) header: Header,
    #[serde(default)]
    pub(crate) created: bool,
    #[serde(default)]
    pub(crate) canceled: bool,
    #[serde(default, deserialize_with = "int64")]
    pub(crate) compact_revision: i64,
    #[serde(default)]
    pub(crate) cancel_reason: String,
    #[serde(default)]
    pub(crate) fragment: bool,
    #[serde(default)]
    pub(crate) events: Vec<WatchEvent>,
}

#[derive(Debug, Deserialize, PartialEq)]
pub(crate) struct WatchEvent {
    /// Absent for a PUT (the zero value).
    #[serde(default, rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) kv: KeyValue,
}
