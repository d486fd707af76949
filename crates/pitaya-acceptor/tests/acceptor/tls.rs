//! TLS over TCP and WSS with a self-signed certificate, and loading PEM files.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use pitaya_acceptor::{AcceptError, Acceptor, AcceptorOptions, Transport, load_tls_config};
use pitaya_codec::{Packet, PacketType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{localhost, packet, test_cert, within};

#[tokio::test]
async fn tls_over_tcp_carries_packets_both_ways() {
    let cert = test_cert();
    let opts = AcceptorOptions { tls: Some(cert.server), ..AcceptorOptions::default() };
    let acceptor = Acceptor::bind_tcp("127.0.0.1:0", opts).await.unwrap();
    assert_eq!(acceptor.transport(), Transport::Tls);

    let tcp = within(TcpStream::connect(acceptor.local_addr())).await.unwrap();
    let client = TlsConnector::from(cert.client).connect(localhost(), tcp);
    let server = async { acceptor.accept().await.unwrap().establish().await };
    let (client, server) = within(async { tokio::join!(client, server) }).await;
    let (mut client, mut conn) = (client.unwrap(), server.unwrap());
    assert_eq!(conn.transport, Transport::Tls);

    let mut wire = packet(4, b"over tls");
    wire.extend(packet(3, b""));
    client.write_all(&wire).await.unwrap();
    client.flush().await.unwrap();
    assert_eq!(
        within(conn.reader.read()).await.unwrap(),
        Some(Packet::new(PacketType::Data, &b"over tls"[..]))
    );
    assert_eq!(
        within(conn.reader.read()).await.unwrap(),
        Some(Packet::empty(PacketType::Heartbeat))
    );

    within(conn.writer.write(Bytes::from(packet(5, b"")))).await.unwrap();
    within(conn.writer.close()).await;
    let mut received = Vec::new();
    within(client.read_to_end(&mut received)).await.unwrap();
    assert_eq!(received, packet(5, b""));
}

#[tokio::test]
async fn wss_carries_packets_both_ways() {
    let cert = test_cert();
    let opts = AcceptorOptions { tls: Some(cert.server), ..AcceptorOptions::default() };
    let acceptor = Acceptor::bind_ws("127.0.0.1:0", opts).await.unwrap();
    assert_eq!(acceptor.transport(), Transport::Wss);

    let tcp = within(TcpStream::connect(acceptor.local_addr())).await.unwrap();
    let client = async {
        let tls = TlsConnector::from(cert.client).connect(localhost(), tcp).await.unwrap();
        tokio_tungstenite::client_async("wss://localhost/game", tls).await
    };
    let server = async { acceptor.accept().await.unwrap().establish().await };
    let (client, server) = within(async { tokio::join!(client, server) }).await;
    let (mut client, mut conn) = (client.unwrap().0, server.unwrap());
    assert_eq!(conn.transport, Transport::Wss);

    client.send(Message::Binary(packet(4, b"over wss").into())).await.unwrap();
    assert_eq!(
        within(conn.reader.read()).await.unwrap(),
        Some(Packet::new(PacketType::Data, &b"over wss"[..]))
    );
    within(conn.writer.write(Bytes::from(packet(3, b"")))).await.unwrap();
    let message = within(client.next()).await.unwrap().unwrap();
    assert_eq!(message, Message::Binary(packet(3, b"").into()));
}

#[tokio::test]
async fn client_that_does_not_speak_tls_is_refused() {
    let cert = test_cert();
    let opts = AcceptorOptions { tls: Some(cert.server), ..AcceptorOptions::default() };
    let acceptor = Acceptor::bind_tcp("127.0.0.1:0", opts).await.unwrap();
    let mut tcp = within(TcpStream::connect(acceptor.local_addr())).await.unwrap();
    tcp.write_all(&packet(1, b"{}")).await.unwrap();
    let err = within(acceptor.accept().await.unwrap().establish()).await.unwrap_err();
    assert!(matches!(err, AcceptError::Tls(_)), "{err:?}");
}

#[test]
fn load_tls_config_reads_pem_files() {
    let cert = test_cert();
    let dir = std::env::temp_dir().join(format!("pitaya-acceptor-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path, empty_path) =
        (dir.join("cert.pem"), dir.join("key.pem"), dir.join("empty.pem"));
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();
    std::fs::write(&key_path, &cert.key_pem).unwrap();
    std::fs::write(&empty_path, "").unwrap();

    assert!(load_tls_config(&cert_path, &key_path).is_ok());
    let missing = dir.join("missing.pem");
    assert!(matches!(load_tls_config(&missing, &key_path), Err(AcceptError::Pem { .. })));
    assert!(matches!(load_tls_config(&empty_path, &key_path), Err(AcceptError::NoCertificate(_))));
    // A certificate file holds no private key.
    assert!(matches!(load_tls_config(&cert_path, &cert_path), Err(AcceptError::Pem { .. })));
    // A key that does not match the certificate.
    let other = test_cert();
    let other_key = dir.join("other-key.pem");
    std::fs::write(&other_key, &other.key_pem).unwrap();
    assert!(matches!(load_tls_config(&cert_path, &other_key), Err(AcceptError::TlsConfig(_))));

    std::fs::remove_dir_all(&dir).unwrap();
}
