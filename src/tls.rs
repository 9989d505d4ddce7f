//! TLS for the network stores, with rustls (no OpenSSL): a custom CA, client
//! certificates (mTLS) and the server name the certificate must carry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{Error, Result};

/// How a network store talks TLS: set [`crate::Config::tls`], or use the
/// `consul+https://` / `etcd+https://` schemes with the URL options
/// `ca_file`, `cert_file`, `key_file` and `tls_server_name`.
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

    /// The rustls client configuration these settings describe.
    pub(crate) fn client_config(&self) -> Result<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::InvalidArgument(format!("TLS: {e}")))?
            .with_root_certificates(self.roots()?);
        match (&self.cert_file, &self.key_file) {
            (None, None) => Ok(builder.with_no_client_auth()),
            (Some(cert_file), Some(key_file)) => {
                let chain = read_certificates(cert_file)?;
                let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
                    Error::InvalidArgument(format!(
                        "TLS key_file {}: no usable private key ({e})",
                        key_file.display()
                    ))
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    Error::InvalidArgument(format!("TLS client certificate and key: {e}"))
                })
            }
            _ => Err(Error::InvalidArgument(
                "TLS: cert_file and key_file go together".into(),
            )),
        }
    }

    fn roots(&self) -> Result<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                for certificate in read_certificates(path)? {
                    roots.add(certificate).map_err(|e| {
                        Error::InvalidArgument(format!("TLS ca_file {}: {e}", path.display()))
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(Error::InvalidArgument(
                        "TLS: no ca_file given and the platform has no trusted roots".into(),
                    ));
                }
            }
        }
        Ok(roots)
    }
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let unusable = |why: String| {
        Error::InvalidArgument(format!("TLS certificate file {}: {why}", path.display()))
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| unusable(e.to_string()))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| unusable(e.to_string()))?;
    if certificates.is_empty() {
        return Err(unusable("no PEM certificate in it".into()));
    }
    Ok(certificates)
}

/// The TLS failure somewhere in `error`'s causes, as text, if there is one.
pub(crate) fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // io::Error hides the error it wraps from `source()`: step into it.
        cause = match current.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(wrapped) => Some(wrapped as &(dyn std::error::Error + 'static)),
                None => current.source(),
            },
            None => current.source(),
        };
    }
    None
}
