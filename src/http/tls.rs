//! TLS with rustls (no OpenSSL) for the HTTP pools: the client
//! configuration a [`crate::TlsConfig`] describes, and telling a TLS failure
//! from another one.

use std::path::Path;

use hyper_rustls::HttpsConnector;
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{Error, Result, TlsConfig};

/// Wraps `connector` in TLS when `tls` is set. Without it the connector
/// speaks plain HTTP only (every endpoint is `http://`).
pub(super) fn wrap<C>(tls: Option<&TlsConfig>, connector: C) -> Result<HttpsConnector<C>> {
    let client_config = match tls {
        Some(tls) => client_config(tls)?,
        None => ClientConfig::builder_with_provider(crate::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::InvalidArgument(format!("TLS: {e}")))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    };
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config)
        .https_or_http();
    let builder = match tls.map(server_name).transpose()?.flatten() {
        Some(name) => builder.with_server_name_resolver(name),
        None => builder,
    };
    Ok(builder.enable_http1().wrap_connector(connector))
}

/// A connector that speaks HTTP/2 over TLS only, as `tls` describes (for
/// etcd's gRPC API).
#[cfg(feature = "grpc")]
pub(crate) fn h2_connector(
    tls: &TlsConfig,
    connect_timeout: std::time::Duration,
) -> Result<HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>> {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config(tls)?)
        .https_only();
    let builder = match server_name(tls)? {
        Some(name) => builder.with_server_name_resolver(name),
        None => builder,
    };
    Ok(builder.enable_http2().wrap_connector(connector))
}

/// The name every certificate is checked against, when `tls` sets one
/// (else each endpoint's host).
fn server_name(tls: &TlsConfig) -> Result<Option<hyper_rustls::FixedServerNameResolver>> {
    let Some(name) = &tls.server_name else {
        return Ok(None);
    };
    let name = rustls_pki_types::ServerName::try_from(name.clone()).map_err(|_| {
        Error::InvalidArgument(format!("TLS server name {name:?} is not a DNS name or IP"))
    })?;
    Ok(Some(hyper_rustls::FixedServerNameResolver::new(name)))
}

/// The rustls client configuration `tls` describes.
fn client_config(tls: &TlsConfig) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidArgument(format!("TLS: {e}")))?
        .with_root_certificates(roots(tls)?);
    match (&tls.cert_file, &tls.key_file) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert_file), Some(key_file)) => {
            let chain = read_certificates(cert_file)?;
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
                Error::InvalidArgument(format!(
                    "TLS key_file {}: no usable private key ({e})",
                    key_file.display()
                ))
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::InvalidArgument(format!("TLS client certificate and key: {e}")))
        }
        _ => Err(Error::InvalidArgument(
            "TLS: cert_file and key_file go together".into(),
        )),
    }
}

fn roots(tls: &TlsConfig) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca_file {
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
