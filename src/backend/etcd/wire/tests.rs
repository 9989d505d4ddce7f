//! The gateway's JSON, both ways.

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
        compare: vec![Compare::modified_at(bytes("k"), 5)],
        success: vec![RequestOp::Put(PutRequest {
            key: bytes("k"),
            value: bytes("v"),
            lease: 0,
            prev_kv: false,
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
}
