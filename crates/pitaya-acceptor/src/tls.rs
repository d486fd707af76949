//! Server TLS configuration from PEM files ([`load_tls_config`]) or DER values
//! ([`tls_config`]).

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::AcceptError;

/// Loads a certificate chain and its private key from PEM files, like Go's
/// `NewTCPAcceptor(addr, certFile, keyFile)` (spec §4.1).
///
/// The result serves both TLS-over-TCP and WSS. It uses the ring provider explicitly, so
/// the process-wide default provider does not matter; clients are not authenticated, and
/// no ALPN protocol is announced (Go's TCP acceptor announces none, and a client offering
/// one the server lacks would otherwise be refused).
///
/// # Errors
/// [`AcceptError::Pem`] when a file cannot be read or holds bad PEM (including a key file
/// with no private key), [`AcceptError::NoCertificate`] for a certificate file without a
/// certificate, [`AcceptError::TlsConfig`] when rustls refuses the pair.
pub fn load_tls_config(
    cert_pem_path: &Path,
    key_pem_path: &Path,
) -> Result<Arc<ServerConfig>, AcceptError> {
    let pem_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AcceptError::Pem { path, source }
    };
    let certs = CertificateDer::pem_file_iter(cert_pem_path)
        .map_err(pem_error(cert_pem_path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(cert_pem_path))?;
    if certs.is_empty() {
        return Err(AcceptError::NoCertificate(cert_pem_path.to_path_buf()));
    }
    let key = PrivateKeyDer::from_pem_file(key_pem_path).map_err(pem_error(key_pem_path))?;
    tls_config(certs, key)
}

/// Builds a server configuration from a DER certificate chain (leaf first) and its key,
/// like Go's `NewTLSAcceptor(addr, certs...)`. Same settings as [`load_tls_config`].
///
/// # Errors
/// [`AcceptError::TlsConfig`] when rustls refuses the chain or the key.
pub fn tls_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, AcceptError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}
