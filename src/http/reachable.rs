//! What `connect` says when no endpoint of a store answers.

use super::HttpClient;
use crate::Error;

impl HttpClient {
    /// `error`, from a request every endpoint failed, as
    /// [`Error::Unreachable`] naming them all (with `error` as its source).
    /// Refusals (bad credentials, a malformed reply) come back as they are:
    /// the store did answer.
    pub(crate) fn none_answered(&self, error: Error) -> Error {
        if !matches!(error, Error::Unreachable { .. } | Error::Timeout { .. }) {
            return error;
        }
        let endpoints: Vec<String> = self.endpoints.iter().map(ToString::to_string).collect();
        Error::Unreachable {
            message: format!("no endpoint answered ({})", endpoints.join(", ")),
            source: Some(std::sync::Arc::new(error)),
        }
    }
}
