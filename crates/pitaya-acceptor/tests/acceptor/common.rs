//! Helpers shared by the integration tests: bounded waits, packet bytes, connection
//! pairs and a self-signed certificate.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pitaya_acceptor::{Acceptor, AcceptorOptions, Connection};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;

/// Upper bound on any single wait; tests finish far sooner.
pub(crate) const LIMIT: Duration = Duration::from_secs(10);

/// Awaits `f`, failing the test if it takes longer than [`LIMIT`].
pub(crate) async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

/// The wire bytes of one packet.
pub(crate) fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap().to_be_bytes();
    let mut out = vec![kind, len[1], len[2], len[3]];
    out.extend_from_slice(body);
    out
}

/// Binds a TCP acceptor on an ephemeral port, connects a client and establishes the
/// server side (which must not need client bytes, i.e. no TLS and no PROXY header).
pub(crate) async fn tcp_pair(opts: AcceptorOptions) -> (TcpStream, Connection) {
    let acceptor = Acceptor::bind_tcp("127.0.0.1:0", opts).await.unwrap();
    let client = within(TcpStream::connect(acceptor.local_addr())).await.unwrap();
    let incoming = within(acceptor.accept()).await.unwrap();
    let conn = within(incoming.establish()).await.unwrap();
    (client, conn)
}

/// Binds a WS acceptor, connects a tungstenite client on `path` and upgrades both sides.
pub(crate) async fn ws_pair(
    opts: AcceptorOptions,
    path: &str,
) -> (WebSocketStream<TcpStream>, Connection) {
    let acceptor = Acceptor::bind_ws("127.0.0.1:0", opts).await.unwrap();
    let addr = acceptor.local_addr();
    let tcp = within(TcpStream::connect(addr)).await.unwrap();
    let url = format!("ws://{addr}{path}");
    let client = tokio_tungstenite::client_async(url, tcp);
    let server = async { acceptor.accept().await.unwrap().establish().await };
    let (client, server) = within(async { tokio::join!(client, server) }).await;
    (client.unwrap().0, server.unwrap())
}

/// A self-signed certificate for "localhost": the server configuration and a client
/// configuration that trusts exactly that certificate.
pub(crate) struct TestCert {
    pub(crate) server: Arc<rustls::ServerConfig>,
    pub(crate) client: Arc<rustls::ClientConfig>,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

pub(crate) fn test_cert() -> TestCert {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let server = pitaya_acceptor::tls_config(vec![cert.clone()], key).unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TestCert {
        server,
        client: Arc::new(client),
        cert_pem: certified.cert.pem(),
        key_pem: certified.signing_key.serialize_pem(),
    }
}

/// The server name the test certificate is issued for.
pub(crate) fn localhost() -> rustls_pki_types::ServerName<'static> {
    rustls_pki_types::ServerName::try_from("localhost").unwrap()
}
