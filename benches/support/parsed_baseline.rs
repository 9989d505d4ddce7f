//! The two parsing references of the `get_range` benches, beside the bare
//! request that reads nothing of its reply:
//! - `baseline_parsed`: the reply read as a plain serde client reads it;
//! - `baseline_scanned`: the reply read by hand, the issue's "minimal
//!   parsing": a lean client written for this one reply, handing out the
//!   same 100 pairs (find each key, value and version, decode the base64),
//!   with none of the checks a library owes its users.
//!
//! Shared by the benches and `examples/request_cost.rs`.
#![allow(dead_code, reason = "each includer reads one server's replies")]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use memchr::memmem::Finder;
use std::sync::LazyLock;

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

/// A Consul listing read by hand, as a lean client does to hand out its
/// pairs: each entry's key, value (decoded) and `ModifyIndex`, found by
/// their field names; nothing else looked at, nothing checked beyond the
/// keys' UTF-8.
/// Assumes what the bench's keys are: no escapes, no `}` in a key.
pub(crate) fn scan_consul_listing(body: &[u8]) -> Vec<(String, Vec<u8>, u64)> {
    static NAMES: LazyLock<[Finder<'static>; 3]> = LazyLock::new(|| {
        [b"\"Key\":" as &[u8], b"\"Value\":", b"\"ModifyIndex\":"].map(Finder::new)
    });
    let [key_name, value_name, index_name] = &*NAMES;
    // One object per entry: room for every pair at once.
    let mut pairs = Vec::with_capacity(memchr::memchr_iter(b'{', body).count());
    let mut at = 0;
    while let Some(key) = after(body, at, key_name) {
        let entry = &body[..memchr::memchr(b'}', &body[key..]).map_or(body.len(), |e| key + e)];
        let value = after(entry, key, value_name)
            .filter(|&v| entry[skip_space(entry, v)] == b'"')
            .map_or_else(Vec::new, |v| BASE64.decode(bytes_at(entry, v)).unwrap());
        let index = after(entry, key, index_name).map_or(0, |i| number_at(entry, i));
        pairs.push((string_at(entry, key).to_owned(), value, index));
        at = entry.len();
    }
    pairs
}

/// An etcd range reply read by hand, like [`scan_consul_listing`]: each
/// kv's key and value decoded from base64, its `mod_revision` parsed.
pub(crate) fn scan_etcd_range(reply: &[u8]) -> Vec<(String, Vec<u8>, i64)> {
    static NAMES: LazyLock<[Finder<'static>; 3]> = LazyLock::new(|| {
        [b"\"key\":" as &[u8], b"\"value\":", b"\"mod_revision\":"].map(Finder::new)
    });
    let [key_name, value_name, revision_name] = &*NAMES;
    // One object per kv (and one for the header): room for every pair.
    let mut pairs = Vec::with_capacity(memchr::memchr_iter(b'{', reply).count());
    let mut at = 0;
    while let Some(key) = after(reply, at, key_name) {
        let entry = &reply[..memchr::memchr(b'}', &reply[key..]).map_or(reply.len(), |e| key + e)];
        let value = after(entry, key, value_name)
            .map_or_else(Vec::new, |v| BASE64.decode(bytes_at(entry, v)).unwrap());
        // int64s are sent as strings: skip the quote.
        let revision = after(entry, key, revision_name)
            .map_or(0, |r| number_at(entry, skip_space(entry, r) + 1));
        let key = String::from_utf8(BASE64.decode(bytes_at(entry, key)).unwrap()).unwrap();
        pairs.push((key, value, i64::try_from(revision).unwrap()));
        at = entry.len();
    }
    pairs
}

/// Where `body` goes on after the first `name` at or after `from`.
fn after(body: &[u8], from: usize, name: &Finder<'_>) -> Option<usize> {
    name.find(&body[from..])
        .map(|at| from + at + name.needle().len())
}

fn skip_space(body: &[u8], mut at: usize) -> usize {
    while body[at].is_ascii_whitespace() {
        at += 1;
    }
    at
}

/// The bytes of the string that starts at `at` (after spaces), without
/// its quotes: base64 text needs no UTF-8 check.
fn bytes_at(body: &[u8], at: usize) -> &[u8] {
    let start = skip_space(body, at) + 1;
    let len = memchr::memchr(b'"', &body[start..]).unwrap();
    &body[start..start + len]
}

/// The string that starts at `at` (after spaces), without its quotes.
fn string_at(body: &[u8], at: usize) -> &str {
    std::str::from_utf8(bytes_at(body, at)).unwrap()
}

/// The digits that start at `at` (after spaces).
fn number_at(body: &[u8], at: usize) -> u64 {
    let start = skip_space(body, at);
    body[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0, |n, b| n * 10 + u64::from(b - b'0'))
}
