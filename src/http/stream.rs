//! Streaming exchanges (etcd's watch streams): the reply's head is awaited,
//! its body read as it comes.

use std::sync::atomic::Ordering;

use super::connect::request_error;
use super::{HttpClient, HttpRequest, request_path};
use crate::{Error, Result};

impl HttpClient {
    /// Opens a streaming exchange: the reply's status, headers and its body
    /// to read as it comes. `timeout` covers the reply's head only. Fails
    /// over like [`HttpClient::send`] while nothing was received.
    pub(crate) async fn open_stream(
        &self,
        request: &HttpRequest<'_>,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        let count = self.endpoints.len();
        let first = self.preferred.load(Ordering::Relaxed) % count;
        let path = request_path(request)?;
        let mut last_error = None;
        for attempt in 0..count {
            let index = (first + attempt) % count;
            let http_request = self.build(index, request, &path)?;
            let head =
                tokio::time::timeout(request.timeout, self.long_lived.request(http_request)).await;
            last_error = Some(match head {
                Ok(Ok(response))
                    if !(response.status().is_server_error() && attempt + 1 < count) =>
                {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(response);
                }
                Ok(Ok(response)) => Error::Unreachable {
                    message: format!(
                        "{} answered {} to {}",
                        self.endpoints[index],
                        response.status(),
                        request.operation
                    ),
                    source: None,
                },
                Ok(Err(e)) => request_error(request.operation, &self.endpoints[index], e),
                Err(_) => Error::Timeout {
                    operation: request.operation,
                    after: request.timeout,
                },
            });
        }
        Err(last_error.unwrap_or_else(|| Error::Unreachable {
            message: "no endpoint answered".into(),
            source: None,
        }))
    }
}
