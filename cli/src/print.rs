//! Printing results as text for people or JSON for scripts.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kvmesh::discovery::Node;
use kvmesh::{KvEvent, KvPair};
use serde_json::{Value, json};

use crate::args::Output;

/// A value as text: as it is when it is UTF-8, else lossily (text output
/// is for people; JSON output never loses a byte).
fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// `{"key", "value" | "value_base64", "version"}`.
fn pair_json(pair: &KvPair) -> Value {
    let mut object = json!({ "key": pair.key, "version": pair.version });
    match std::str::from_utf8(&pair.value) {
        Ok(value) => object["value"] = json!(value),
        Err(_) => object["value_base64"] = json!(STANDARD.encode(&pair.value)),
    }
    object
}

/// One key read with `get`.
pub(crate) fn pair(output: Output, pair: &KvPair) {
    match output {
        Output::Text => println!("{}", text(&pair.value)),
        Output::Json => println!("{}", pair_json(pair)),
    }
}

/// A listing: `key<TAB>value` lines, or one JSON array.
pub(crate) fn pairs(output: Output, pairs: &[KvPair]) {
    match output {
        Output::Text => {
            for pair in pairs {
                println!("{}\t{}", pair.key, text(&pair.value));
            }
        }
        Output::Json => {
            let list: Vec<Value> = pairs.iter().map(pair_json).collect();
            println!("{}", Value::Array(list));
        }
    }
}

/// One watch event: `PUT<TAB>key<TAB>value<TAB>version` or
/// `DELETE<TAB>key<TAB><TAB>version`, or one JSON object per line.
pub(crate) fn event(output: Output, event: &KvEvent) {
    match (output, event) {
        (Output::Text, KvEvent::Put(pair)) => {
            println!("PUT\t{}\t{}\t{}", pair.key, text(&pair.value), pair.version)
        }
        (Output::Text, KvEvent::Delete { key, version }) => {
            println!("DELETE\t{key}\t\t{version}")
        }
        (Output::Json, KvEvent::Put(pair)) => {
            let mut object = pair_json(pair);
            object["event"] = json!("put");
            println!("{object}");
        }
        (Output::Json, KvEvent::Delete { key, version }) => {
            println!(
                "{}",
                json!({ "event": "delete", "key": key, "version": version })
            );
        }
    }
}

/// A service's nodes: `id<TAB>address<TAB>k=v,...` lines, or a JSON array
/// of the nodes as discovery stores them.
pub(crate) fn nodes(output: Output, nodes: &[Node]) {
    match output {
        Output::Text => {
            for node in nodes {
                let meta: Vec<String> = node.meta.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("{}\t{}\t{}", node.id, node.address, meta.join(","));
            }
        }
        Output::Json => println!("{}", json!(nodes)),
    }
}
