//! `Store::txn` on Consul: one `PUT /v1/txn`, the checks as `check-index`
//! and `check-not-exists`, the writes as `set` and `delete`. A rolled-back
//! txn lists its failed operations, which name the failed checks.

use serde::Deserialize;
use serde_json::{Value, json};

use super::ConsulStore;
use super::keys::check_key;
use crate::base64_bytes::encode;
use crate::txn::TxnWrite;
use crate::{Error, Result, Txn, TxnResult};

/// The most operations Consul takes in one txn (checks and writes together).
const MAX_TXN_OPS: usize = 64;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnReply {
    #[serde(default)]
    results: Option<Vec<TxnResultEntry>>,
    #[serde(default)]
    errors: Option<Vec<TxnError>>,
    /// Sent for a txn that only reads (checks alone).
    #[serde(default)]
    index: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnResultEntry {
    #[serde(rename = "KV")]
    kv: Option<TxnKv>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnKv {
    modify_index: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnError {
    op_index: usize,
    what: String,
}

impl ConsulStore {
    pub(super) async fn apply_txn(&self, txn: Txn) -> Result<TxnResult> {
        txn.validate("Consul", MAX_TXN_OPS, MAX_TXN_OPS)?;
        if txn.len() > MAX_TXN_OPS {
            return Err(Error::InvalidArgument(format!(
                "a txn on Consul takes at most {MAX_TXN_OPS} operations, checks and writes \
                 together; this one has {}",
                txn.len()
            )));
        }
        let keys = txn.checks.iter().map(|c| c.key.as_str());
        let keys = keys.chain(txn.guards.iter().map(|g| g.key.as_str()));
        for key in keys.chain(txn.writes.iter().map(TxnWrite::key)) {
            check_key(key)?;
        }
        let checks = txn.checks.iter().map(|check| match check.version {
            None => json!({ "KV": { "Verb": "check-not-exists", "Key": check.key } }),
            Some(index) => {
                json!({ "KV": { "Verb": "check-index", "Key": check.key, "Index": index } })
            }
        });
        // A lock is held while its key is held by the holder's session.
        let guards = txn.guards.iter().map(|guard| {
            json!({ "KV": { "Verb": "check-session", "Key": guard.key, "Session": guard.session } })
        });
        let writes = txn.writes.iter().map(|write| match write {
            TxnWrite::Put { key, value } => {
                json!({ "KV": { "Verb": "set", "Key": key, "Value": encode(value) } })
            }
            TxnWrite::Delete { key } => json!({ "KV": { "Verb": "delete", "Key": key } }),
        });
        let operations = Value::Array(checks.chain(guards).chain(writes).collect());
        let client = &self.inner.client;
        let reply = client.txn(&operations).await?;
        let committed = reply.status == hyper::StatusCode::OK;
        let decoded: TxnReply = reply.json("consul txn")?;
        if !committed {
            return conflict(&txn, decoded.errors.unwrap_or_default());
        }
        for write in &txn.writes {
            if let TxnWrite::Delete { key } = write {
                // A deleted TTL key's session has nothing left to hold.
                self.inner.ttl.forget(client, key, false).await;
            }
        }
        let written = decoded.results.unwrap_or_default();
        let version = match written
            .iter()
            .filter_map(|r| r.kv.as_ref())
            .map(|kv| kv.modify_index)
            .max()
        {
            Some(index) => index,
            None => match decoded.index {
                Some(index) => index,
                // Deletes only: Consul names no index; the deleted key's
                // read does (at least the commit's).
                None => {
                    let key = txn.writes.first().map_or("", TxnWrite::key);
                    client.read(key, false, None).await?.index
                }
            },
        };
        Ok(TxnResult::Committed { version })
    }
}

/// The keys of the checks among the failed operations (version checks
/// come first, then lock checks, then writes).
fn conflict(txn: &Txn, errors: Vec<TxnError>) -> Result<TxnResult> {
    let checked: Vec<&String> = txn.checks.iter().map(|c| &c.key).collect();
    let guarded = txn.guards.iter().map(|g| &g.key);
    let checked: Vec<&String> = checked.into_iter().chain(guarded).collect();
    let mut keys: Vec<String> = Vec::new();
    for error in &errors {
        match checked.get(error.op_index) {
            Some(key) if !keys.contains(key) => keys.push((*key).clone()),
            Some(_) => {}
            None => {
                // A write failed: not a conflict but a refusal.
                let key = txn
                    .writes
                    .get(error.op_index - checked.len())
                    .map_or("", TxnWrite::key);
                return Err(Error::invalid_key(
                    key,
                    format!("Consul refused it: {}", error.what),
                ));
            }
        }
    }
    if keys.is_empty() {
        return Err(Error::malformed(
            "Consul rolled a txn back without naming why",
        ));
    }
    Ok(TxnResult::Conflict { keys })
}
