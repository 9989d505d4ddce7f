//! `rediss://`: TLS through redis-rs's rustls support, with the CA and the
//! client certificate of [`crate::TlsConfig`].

use crate::{Error, Result, TlsConfig};

/// A redis-rs client for `url` (`rediss://`) trusting `tls.ca_file` (else
/// the system's roots), with `tls.cert_file`/`key_file` for mTLS.
pub(super) fn client(url: String, tls: &TlsConfig) -> Result<redis::RedisResult<redis::Client>> {
    if tls.server_name.is_some() {
        return Err(Error::Unsupported {
            backend: "redis",
            what: "tls_server_name: the certificate must name the host of the URL".into(),
        });
    }
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| Error::Tls {
            message: format!("reading {}: {e}", path.display()),
        })
    };
    let root_cert = tls.ca_file.as_deref().map(read).transpose()?;
    let client_tls = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        (None, None) => None,
        _ => {
            return Err(Error::InvalidArgument(
                "cert_file and key_file go together".into(),
            ));
        }
    };
    // redis-rs builds its rustls config from the process's crypto provider:
    // ring, as the rest of kvmesh, unless the application chose one.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: one is installed.
        let _ = crate::tls::ring_provider().install_default();
    }
    let certificates = redis::TlsCertificates {
        client_tls,
        root_cert,
    };
    Ok(redis::Client::build_with_tls(url, certificates))
}

/// The TLS failure inside `e`, if that is what it is. redis-rs keeps the
/// I/O error (and the rustls error in it) to itself, so beyond the source
/// chain this goes by rustls's own words for a refused handshake.
pub(super) fn failure(e: &redis::RedisError) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = source {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        source = error.source();
    }
    let text = e.to_string();
    let handshake = [
        "invalid peer certificate",
        "received fatal alert",
        "peer is incompatible",
        "peer misbehaved",
        "no server certificate chain resolved",
    ];
    (e.is_io_error() && handshake.iter().any(|words| text.contains(words))).then_some(text)
}
