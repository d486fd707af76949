//! [`TlsOptions`]: the rustls client configuration used for `tls://` and `wss://`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::ClientError;

/// TLS settings for a connection.
///
/// Built from trusted roots ([`with_root_certs`](Self::with_root_certs),
/// [`with_root_pem`](Self::with_root_pem)), from a ready rustls [`ClientConfig`]
/// ([`from_config`](Self::from_config)), or, for tests and load tools only, with no
/// verification at all ([`insecure`](Self::insecure)). The ring provider is used
/// explicitly, so the process-wide default provider does not matter.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// The rustls configuration. Shared: building it is costly, cloning it is not.
    pub config: Arc<ClientConfig>,
    /// The name checked against the server certificate (DNS name or IP address); the
    /// address's host when `None`.
    pub server_name: Option<String>,
}

impl TlsOptions {
    /// Trusts exactly `certs` (for instance a self-signed server certificate).
    ///
    /// # Errors
    /// [`ClientError::TlsConfig`] when a certificate does not parse.
    pub fn with_root_certs(
        certs: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<Self, ClientError> {
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| ClientError::TlsConfig(e.to_string()))?;
        }
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::TlsConfig(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self::from_config(Arc::new(config)))
    }

    /// Trusts the certificates of a PEM bundle (the contents of a `.pem` or `.crt` file).
    ///
    /// # Errors
    /// [`ClientError::TlsConfig`] when the PEM holds no certificate or a bad one.
    pub fn with_root_pem(pem: &[u8]) -> Result<Self, ClientError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientError::TlsConfig(e.to_string()))?;
        if certs.is_empty() {
            return Err(ClientError::TlsConfig("no certificate in pem".into()));
        }
        Self::with_root_certs(certs)
    }

    /// Uses `config` as is (client certificates, ALPN, custom verifiers...).
    pub fn from_config(config: Arc<ClientConfig>) -> Self {
        Self { config, server_name: None }
    }

    /// Accepts any server certificate. **Dangerous**: anyone on the path can read and
    /// change the traffic. Meant for tests and load generators against self-signed servers.
    pub fn insecure() -> Self {
        let provider = provider();
        let verifier = Arc::new(AcceptAnyCert(provider.signature_verification_algorithms));
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            // The ring provider supports rustls' default protocol versions by construction.
            .expect("ring provider supports the default tls versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Self::from_config(Arc::new(config))
    }

    /// Checks the certificate against `name` instead of the address's host, e.g.
    /// `"localhost"` when connecting to `127.0.0.1`.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The name to verify: the configured one, else `host`.
    pub(crate) fn name_for(&self, host: &str) -> Result<ServerName<'static>, ClientError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        ServerName::try_from(name.to_owned())
            .map_err(|e| ClientError::TlsConfig(format!("server name {name:?}: {e}")))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A verifier that trusts every certificate but still checks handshake signatures, so
/// the session keys really belong to whoever presented the certificate.
#[derive(Debug)]
struct AcceptAnyCert(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
