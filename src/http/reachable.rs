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

impl Error {
    /// This error, or, when an HTTP exchange failed because the reply was
    /// not HTTP at all (a Redis server answering), one that says so in a
    /// line: `is it <expected>?`. A reply cut short stays `Unreachable`
    /// (a server restarting does that too), with the same hint.
    pub(crate) fn not_http(self, expected: &str) -> Error {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&self);
        while let Some(error) = cause {
            if let Some(hyper) = error.downcast_ref::<hyper::Error>() {
                let Error::Unreachable { message, source } = &self else {
                    return self;
                };
                let message = match message.strip_prefix("no endpoint answered ") {
                    Some(endpoints) => format!(
                        "connecting to {}",
                        endpoints.trim_start_matches('(').trim_end_matches(')')
                    ),
                    None => message.clone(),
                };
                if hyper.is_parse() {
                    return Error::MalformedReply {
                        message: format!(
                            "{message}: the server there does not speak HTTP (is it {expected}?)"
                        ),
                        source: None,
                    };
                }
                if hyper.is_incomplete_message() {
                    return Error::Unreachable {
                        message: format!(
                            "{message}: the server closed the connection mid-reply (is it {expected}?)"
                        ),
                        source: source.clone(),
                    };
                }
                return self;
            }
            cause = error.source();
        }
        self
    }
}
