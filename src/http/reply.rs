//! A whole HTTP reply, as the backends read it.

use bytes::Bytes;
use hyper::StatusCode;
#[cfg(feature = "consul")]
use hyper::header::AsHeaderName;
use hyper::header::HeaderMap;
use serde::Deserialize;

/// A whole reply.
#[derive(Debug)]
pub(crate) struct HttpReply {
    pub(crate) status: StatusCode,
    #[cfg_attr(not(feature = "consul"), allow(dead_code))]
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl HttpReply {
    /// A header as text, if present and valid. A `&'static HeaderName`
    /// is looked up without parsing its name.
    #[cfg(feature = "consul")]
    pub(crate) fn header(&self, name: impl AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body decoded as JSON; [`crate::Error::MalformedReply`] naming
    /// `operation`, with serde's error as its source, when it does not decode.
    pub(crate) fn json<'a, T: Deserialize<'a>>(&'a self, operation: &str) -> crate::Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            crate::Error::undecodable(
                format!(
                    "{operation}: cannot decode the reply (status {}, body {:?})",
                    self.status.as_u16(),
                    self.excerpt()
                ),
                e,
            )
        })
    }

    /// The start of the body, for error messages.
    pub(crate) fn excerpt(&self) -> String {
        excerpt(&self.body)
    }
}

/// At most 200 bytes of `body`, lossily as text.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let cut = &body[..body.len().min(200)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if body.len() > cut.len() {
        text.push('…');
    }
    text
}
