//! etcd's messages as the rest of the backend holds them ([`wire`]) to and
//! from their protobuf form ([`proto`]): the same fields, moved.

use super::proto;
use crate::backend::etcd::wire;

pub(super) fn range(request: &wire::RangeRequest) -> proto::RangeRequest {
    proto::RangeRequest {
        key: request.key.clone(),
        range_end: request.range_end.clone().unwrap_or_default(),
        limit: request.limit,
        revision: request.revision,
        sort_order: request.sort_order.map_or(0, |order| order as i32),
        sort_target: request.sort_target.map_or(0, |target| target as i32),
        max_create_revision: request.max_create_revision,
    }
}

pub(super) fn put(request: &wire::PutRequest) -> proto::PutRequest {
    proto::PutRequest {
        key: request.key.clone(),
        value: request.value.clone(),
        lease: request.lease,
        prev_kv: request.prev_kv,
    }
}

pub(super) fn delete_range(request: &wire::DeleteRangeRequest) -> proto::DeleteRangeRequest {
    proto::DeleteRangeRequest {
        key: request.key.clone(),
        range_end: request.range_end.clone().unwrap_or_default(),
        prev_kv: request.prev_kv,
    }
}

fn compare(compare: &wire::Compare) -> proto::Compare {
    let target_union = match compare.target {
        wire::CompareTarget::Create => compare
            .create_revision
            .map(proto::TargetUnion::CreateRevision),
        wire::CompareTarget::Mod => compare.mod_revision.map(proto::TargetUnion::ModRevision),
        wire::CompareTarget::Lease => compare.lease.map(proto::TargetUnion::Lease),
    };
    proto::Compare {
        result: compare.result as i32,
        target: compare.target as i32,
        key: compare.key.clone(),
        target_union,
    }
}

fn request_op(op: &wire::RequestOp) -> proto::RequestOp {
    let request = match op {
        wire::RequestOp::Range(request) => proto::Request::Range(range(request)),
        wire::RequestOp::Put(request) => proto::Request::Put(put(request)),
        wire::RequestOp::DeleteRange(request) => proto::Request::DeleteRange(delete_range(request)),
    };
    proto::RequestOp {
        request: Some(request),
    }
}

pub(super) fn txn(request: &wire::TxnRequest) -> proto::TxnRequest {
    proto::TxnRequest {
        compare: request.compare.iter().map(compare).collect(),
        success: request.success.iter().map(request_op).collect(),
        failure: request.failure.iter().map(request_op).collect(),
    }
}

pub(super) fn watch_create(request: &wire::WatchCreateRequest) -> proto::WatchCreateRequest {
    proto::WatchCreateRequest {
        key: request.key.clone(),
        range_end: request.range_end.clone().unwrap_or_default(),
        start_revision: request.start_revision,
        progress_notify: request.progress_notify,
        watch_id: 0,
        fragment: false,
    }
}

// ----- replies -----

pub(super) fn header(header: Option<proto::ResponseHeader>) -> wire::Header {
    wire::Header {
        revision: header.map_or(0, |h| h.revision),
    }
}

pub(super) fn key_value(kv: proto::KeyValue) -> wire::KeyValue {
    wire::KeyValue {
        key: kv.key,
        value: kv.value,
        mod_revision: kv.mod_revision,
        create_revision: kv.create_revision,
        lease: kv.lease,
    }
}

pub(super) fn range_response(reply: proto::RangeResponse) -> wire::RangeResponse {
    wire::RangeResponse {
        header: header(reply.header),
        kvs: reply.kvs.into_iter().map(key_value).collect(),
    }
}

pub(super) fn put_response(reply: proto::PutResponse) -> wire::PutResponse {
    wire::PutResponse {
        header: header(reply.header),
        prev_kv: reply.prev_kv.map(key_value),
    }
}

pub(super) fn delete_range_response(
    reply: proto::DeleteRangeResponse,
) -> wire::DeleteRangeResponse {
    wire::DeleteRangeResponse {
        deleted: reply.deleted,
        prev_kvs: reply.prev_kvs.into_iter().map(key_value).collect(),
    }
}

pub(super) fn txn_response(reply: proto::TxnResponse) -> wire::TxnResponse {
    let responses = reply
        .responses
        .into_iter()
        .map(|op| {
            let mut response = wire::ResponseOp::default();
            match op.response {
                Some(proto::Response::Range(range)) => {
                    response.response_range = Some(range_response(range));
                }
                Some(proto::Response::Put(put)) => {
                    response.response_put = Some(put_response(put));
                }
                Some(proto::Response::DeleteRange(delete)) => {
                    response.response_delete_range = Some(delete_range_response(delete));
                }
                None => {}
            }
            response
        })
        .collect();
    wire::TxnResponse {
        header: header(reply.header),
        succeeded: reply.succeeded,
        responses,
    }
}

pub(super) fn watch_response(reply: proto::WatchResponse) -> wire::WatchResponse {
    wire::WatchResponse {
        header: header(reply.header),
        created: reply.created,
        canceled: reply.canceled,
        compact_revision: reply.compact_revision,
        cancel_reason: reply.cancel_reason,
        fragment: reply.fragment,
        events: reply
            .events
            .into_iter()
            .map(|event| wire::WatchEvent {
                kind: (event.kind == proto::EVENT_DELETE).then(|| "DELETE".to_owned()),
                kv: event.kv.map(key_value).unwrap_or_default(),
            })
            .collect(),
    }
}
