//! TLS over TCP and WebSocket with an rcgen self-signed certificate.

use std::sync::Arc;

use pitaya_client::{Client, ClientError, ClientOptions, TlsOptions};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::support::{Config, FakeServer, Wire, within};

struct Identity {
    cert: CertificateDer<'static>,
    pem: String,
    acceptor: TlsAcceptor,
}

fn identity() -> Identity {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = certified.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.clone()], key.into())
    .unwrap();
    Identity { cert, pem: certified.cert.pem(), acceptor: TlsAcceptor::from(Arc::new(config)) }
}

async fn tls_server(wire: Wire, id: &Identity) -> FakeServer {
    FakeServer::start(wire, Config { tls: Some(id.acceptor.clone()), ..Config::default() }).await
}

#[tokio::test]
async fn tls_over_tcp_and_wss() {
    within(async {
        let id = identity();
        for wire in [Wire::Tcp, Wire::Ws] {
            let server = tls_server(wire, &id).await;
            let tls = TlsOptions::with_root_certs([id.cert.clone()]).unwrap();
            let opts = ClientOptions { tls: Some(tls), ..ClientOptions::default() };
            let (client, mut pushes) = Client::connect(&server.url(true), opts).await.unwrap();
            assert_eq!(client.request("secure.echo", "s3cret").await.unwrap(), "s3cret");
            assert_eq!(client.request("push", "1").await.unwrap(), "ok");
            assert_eq!(pushes.recv().await.unwrap().data, "0");
            client.close().await;
        }
    })
    .await;
}

#[tokio::test]
async fn tls_options_from_pem_with_a_server_name_and_a_plain_address() {
    within(async {
        let id = identity();
        let server = tls_server(Wire::Tcp, &id).await;
        let tls = TlsOptions::with_root_pem(id.pem.as_bytes()).unwrap().server_name("localhost");
        let opts = ClientOptions { tls: Some(tls), ..ClientOptions::default() };
        // A scheme-less address uses TLS because the options ask for it.
        let (client, _) = Client::connect(&server.url(false), opts).await.unwrap();
        assert_eq!(client.request("a.b", "pem").await.unwrap(), "pem");
    })
    .await;
}

#[tokio::test]
async fn untrusted_certificates_are_refused_unless_insecure() {
    within(async {
        let id = identity();
        let server = tls_server(Wire::Ws, &id).await;
        let stranger = identity();
        let tls = TlsOptions::with_root_certs([stranger.cert]).unwrap();
        let opts = ClientOptions { tls: Some(tls), ..ClientOptions::default() };
        let err = Client::connect(&server.url(true), opts).await.unwrap_err();
        assert!(matches!(err, ClientError::Tls(_)), "{err:?}");

        let opts = ClientOptions { tls: Some(TlsOptions::insecure()), ..ClientOptions::default() };
        let (client, _) = Client::connect(&server.url(true), opts).await.unwrap();
        assert_eq!(client.request("a.b", "anyway").await.unwrap(), "anyway");

        let err = Client::connect(&server.url(true), ClientOptions::default()).await.unwrap_err();
        assert!(matches!(err, ClientError::TlsConfig(_)), "{err:?}");
    })
    .await;
}
