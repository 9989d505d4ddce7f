//! One server of a store: its address parsed once, so that a request's URI
//! and `Host` header are assembled from shared parts instead of a string
//! formatted and parsed per request.

use hyper::Uri;
use hyper::header::HeaderValue;
use hyper::http::uri::{Authority, Parts, PathAndQuery, Scheme};

use crate::{Error, Result};

/// `http://host:port` or `https://host:port`, checked and split.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    scheme: Scheme,
    authority: Authority,
    /// The `Host` header every request to this endpoint carries (hyper-util
    /// would otherwise format it anew for every request).
    host: HeaderValue,
}

impl Endpoint {
    /// Parses `host:port`, refusing anything else (a path, a userinfo, a
    /// scheme) so that an endpoint can never redirect a request.
    pub(crate) fn parse(endpoint: &str, https: bool) -> Result<Self> {
        let bad = |why: &str| Error::InvalidArgument(format!("endpoint {endpoint:?}: {why}"));
        if endpoint.is_empty() {
            return Err(bad("empty"));
        }
        if endpoint.contains(['/', '@', '?', '#']) || endpoint.contains(char::is_whitespace) {
            return Err(bad("expected host:port"));
        }
        // Cloned per request: a reference count, never a copy.
        let authority: Authority = endpoint.parse().map_err(|_| bad("expected host:port"))?;
        if authority.host().is_empty() {
            return Err(bad("no host"));
        }
        let port = endpoint.strip_prefix(authority.host()).unwrap_or(endpoint);
        if !port.is_empty()
            && port
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .is_none()
        {
            return Err(bad("the port is not a number from 0 to 65535"));
        }
        let host = HeaderValue::from_str(endpoint).map_err(|_| bad("expected host:port"))?;
        Ok(Endpoint {
            scheme: if https { Scheme::HTTPS } else { Scheme::HTTP },
            authority,
            host,
        })
    }

    /// The absolute URI of `path` (path and query) on this endpoint.
    pub(crate) fn uri(&self, path: PathAndQuery) -> Result<Uri> {
        let mut parts = Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path);
        Uri::from_parts(parts).map_err(|e| Error::InvalidArgument(format!("a request URI: {e}")))
    }

    /// The value of the `Host` header of a request to this endpoint.
    pub(crate) fn host(&self) -> &HeaderValue {
        &self.host
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_plain_host_port() {
        let plain = Endpoint::parse("127.0.0.1:8500", false).unwrap();
        assert_eq!(plain.to_string(), "http://127.0.0.1:8500");
        assert_eq!(plain.host(), "127.0.0.1:8500");
        let tls = Endpoint::parse("[::1]:8500", true).unwrap();
        assert_eq!(tls.to_string(), "https://[::1]:8500");
        assert!(Endpoint::parse("localhost", false).is_ok());
        for bad in [
            "",
            "a/b",
            "user@host:1",
            "h:1?x",
            "h :1",
            "h:port",
            "h:1:2",
            ":80",
            "h:70000",
        ] {
            assert!(Endpoint::parse(bad, false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn uris_join_the_endpoint_and_the_path() {
        let endpoint = Endpoint::parse("localhost:2379", false).unwrap();
        let uri = endpoint
            .uri(PathAndQuery::from_static("/v1/kv/a%20b?recurse"))
            .unwrap();
        assert_eq!(uri.to_string(), "http://localhost:2379/v1/kv/a%20b?recurse");
        assert_eq!(uri.host(), Some("localhost"));
        assert_eq!(uri.port_u16(), Some(2379));
    }
}
