//! TLS settings for the network stores: a custom CA, client certificates
//! (mTLS) and the server name the certificate must carry. The `tls` cargo
//! feature (on by default) brings the rustls code that uses them.

use std::path::PathBuf;

/// How a network store talks TLS: set [`crate::Config::tls`], or use the
/// `consul+https://` / `etcd+https://` / `rediss://` schemes with the URL
/// options `ca_file`, `cert_file`, `key_file` and `tls_server_name`. Needs
/// the `tls` feature: without it, TLS settings are
/// [`Error::Unsupported`](crate::Error::Unsupported).
///
/// ```
/// use kvmesh::{Config, TlsConfig};
///
/// let tls = TlsConfig::default()
///     .with_ca_file("/etc/kvmesh/ca.pem")
///     .with_client_certificate("/etc/kvmesh/client.pem", "/etc/kvmesh/client-key.pem");
/// let config = Config::default().with_tls(tls);
/// assert!(config.tls.is_some());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsConfig {
    /// PEM file of the CA certificate(s) the server's certificate must chain
    /// to. `None`: the platform's trusted roots.
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate chain, for servers that require
    /// client certificates (mTLS). Needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key (its content is
    /// never logged or shown).
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate must carry, when it is not the
    /// endpoint's host (e.g. endpoints given by IP address).
    pub server_name: Option<String>,
}

impl TlsConfig {
    /// Trusts the CA certificate(s) in this PEM file instead of the
    /// platform's roots.
    #[must_use]
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Presents this client certificate chain and key (PEM files).
    #[must_use]
    pub fn with_client_certificate(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.cert_file = Some(cert_file.into());
        self.key_file = Some(key_file.into());
        self
    }

    /// Checks the server's certificate against this name.
    #[must_use]
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }
}

/// The rustls crypto provider kvmesh's TLS connections use: the process's
/// default when the application installed one (for example aws-lc-rs, for
/// post-quantum key exchange), else *ring*, which builds with no C
/// toolchain.
#[cfg(all(feature = "tls", any(feature = "consul", feature = "etcd")))]
pub(crate) fn crypto_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    match rustls::crypto::CryptoProvider::get_default() {
        Some(provider) => provider.clone(),
        None => std::sync::Arc::new(ring_provider()),
    }
}

/// *ring*'s provider. rustls 0.23.48 deprecates it for having no
/// post-quantum key exchange; it stays the fallback by choice (see
/// [`crypto_provider`]), and an application that wants post-quantum key
/// exchange installs a provider that has it.
#[cfg(all(
    feature = "tls",
    any(feature = "consul", feature = "etcd", feature = "redis")
))]
#[allow(deprecated)]
pub(crate) fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}
