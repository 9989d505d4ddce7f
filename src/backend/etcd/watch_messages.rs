//! The messages of a `/v3/watch` stream: the create request, and the
//! newline-delimited results (events, progress, cancellation, errors).

use serde::{Deserialize, Serialize};

use super::wire::{Header, KeyValue, int64};

#[derive(Debug, Serialize)]
pub(super) struct WatchRequest {
    pub(super) create_request: CreateRequest,
}

#[derive(Debug, Serialize)]
pub(super) struct CreateRequest {
    pub(super) key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) range_end: Option<String>,
    pub(super) start_revision: String,
    pub(super) progress_notify: bool,
}

/// One line of a watch stream.
#[derive(Debug, Deserialize, PartialEq)]
pub(super) struct WatchLine {
    #[serde(default)]
    pub(super) result: Option<WatchResult>,
    #[serde(default)]
    pub(super) error: Option<StreamError>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
pub(super) struct WatchResult {
    #[serde(default)]
    pub(super) header: Header,
    #[serde(default)]
    pub(super) created: bool,
    #[serde(default)]
    pub(super) canceled: bool,
    #[serde(default, deserialize_with = "int64")]
    pub(super) compact_revision: i64,
    #[serde(default)]
    pub(super) cancel_reason: String,
    #[serde(default)]
    pub(super) fragment: bool,
    #[serde(default)]
    pub(super) events: Vec<WatchEvent>,
}

#[derive(Debug, Deserialize, PartialEq)]
pub(super) struct WatchEvent {
    /// Absent for a PUT (the zero value).
    #[serde(default, rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) kv: KeyValue,
}

#[derive(Debug, Deserialize, PartialEq)]
pub(super) struct StreamError {
    #[serde(default, alias = "code")]
    pub(super) grpc_code: i32,
    #[serde(default)]
    pub(super) message: String,
}
