//! The parsing reference of the `get_range` benches, beside the bare
//! request that reads nothing of its reply: `baseline_parsed`, the reply
//! read as a plain serde client reads it.
#![allow(dead_code, reason = "each includer reads one server's replies")]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// A Consul listing as a plain serde client reads it.
pub(crate) fn parse_consul_listing(body: &[u8]) -> Vec<(String, Vec<u8>)> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        key: String,
        value: Option<String>,
    }
    let entries: Vec<Entry> = serde_json::from_slice(body).unwrap();
    entries
        .into_iter()
        .map(|e| {
            let value = e.value.unwrap_or_default();
            let value = BASE64.decode(value).unwrap();
            (e.key, value)
        })
        .collect()
}

/// A range reply as a plain serde client reads it: keys and values from
/// base64, revisions (int64s, sent as strings) parsed.
pub(crate) fn parse_etcd_range(reply: &[u8]) -> Vec<(String, Vec<u8>, i64)> {
    #[derive(serde::Deserialize)]
    struct Range {
        #[serde(default)]
        kvs: Vec<Kv>,
    }
    #[derive(serde::Deserialize)]
    struct Kv {
        key: String,
        #[serde(default)]
        value: String,
        mod_revision: String,
    }
    let range: Range = serde_json::from_slice(reply).unwrap();
    range
        .kvs
        .into_iter()
        .map(|kv| {
            let key = String::from_utf8(BASE64.decode(kv.key).unwrap()).unwrap();
            let value = BASE64.decode(kv.value).unwrap();
            (key, value, kv.mod_revision.parse().unwrap())
        })
        .collect()
}
