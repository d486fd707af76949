//! Connection lifecycle: handshake outcomes, heartbeats, kick, closes from either side.

use std::sync::atomic::Ordering;
use std::time::Duration;

use pitaya_client::{Client, ClientError, ClientOptions, CloseReason};
use tokio::net::TcpListener;

use crate::support::{Config, FakeServer, Wire, eventually, within};

#[tokio::test]
async fn handshake_code_400_is_rejected() {
    within(async {
        for wire in [Wire::Tcp, Wire::Ws] {
            let server = FakeServer::start(wire, Config { code: 400, ..Config::default() }).await;
            let err =
                Client::connect(&server.url(false), ClientOptions::default()).await.unwrap_err();
            assert!(matches!(err, ClientError::HandshakeRejected { code: 400 }), "{err:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn compressed_handshake_response_is_read() {
    within(async {
        let config = Config {
            compress_handshake: true,
            heartbeat: Duration::from_secs(30),
            ..Config::default()
        };
        let server = FakeServer::start(Wire::Ws, config).await;
        let (client, _) =
            Client::connect(&server.url(false), ClientOptions::default()).await.unwrap();
        assert_eq!(client.handshake_response().sys.heartbeat, Duration::from_secs(30));
        assert_eq!(client.request("a.b", "x").await.unwrap(), "x");
    })
    .await;
}

#[tokio::test]
async fn heartbeats_flow_both_ways() {
    within(async {
        let config = Config { heartbeat: Duration::from_millis(100), ..Config::default() };
        let server = FakeServer::start(Wire::Tcp, config).await;
        let (client, _) =
            Client::connect(&server.url(false), ClientOptions::default()).await.unwrap();
        eventually("server heartbeats", || client.server_heartbeats() >= 2).await;
        eventually("client heartbeats", || server.seen.heartbeats.load(Ordering::SeqCst) >= 2)
            .await;
        assert!(!client.is_closed());
    })
    .await;
}

#[tokio::test]
async fn a_silent_server_is_dropped_after_three_heartbeat_intervals() {
    within(async {
        let config = Config {
            heartbeat: Duration::from_millis(50),
            send_heartbeats: false,
            ..Config::default()
        };
        let server = FakeServer::start(Wire::Tcp, config).await;
        let (client, _) =
            Client::connect(&server.url(false), ClientOptions::default()).await.unwrap();
        let pending = client.request("silent", "");
        assert!(matches!(pending.await, Err(ClientError::Closed)));
        assert_eq!(client.close_reason(), Some(CloseReason::HeartbeatTimeout));
    })
    .await;
}

#[tokio::test]
async fn kick_sets_kicked_and_closes() {
    within(async {
        for wire in [Wire::Tcp, Wire::Ws] {
            let server = FakeServer::start(wire, Config::default()).await;
            let (client, mut pushes) =
                Client::connect(&server.url(false), ClientOptions::default()).await.unwrap();
            assert!(!client.kicked());
            assert!(matches!(client.request("kick", "").await, Err(ClientError::Closed)));
            client.closed().await;
            assert!(client.kicked(), "{wire:?}");
            assert_eq!(client.close_reason(), Some(CloseReason::Kicked));
            assert!(pushes.recv().await.is_none());
            assert!(matches!(client.request("a.b", "").await, Err(ClientError::Closed)));
            assert!(matches!(client.notify("a.b", "").await, Err(ClientError::Closed)));
        }
    })
    .await;
}

#[tokio::test]
async fn server_close_fails_pending_requests_with_closed() {
    within(async {
        for wire in [Wire::Tcp, Wire::Ws] {
            let server = FakeServer::start(wire, Config::default()).await;
            // A timeout far beyond the test bound: only the close can end these requests.
            let opts =
                ClientOptions { request_timeout: Duration::from_secs(3600), ..Default::default() };
            let (client, _) = Client::connect(&server.url(false), opts).await.unwrap();
            let waiting: Vec<_> = (0..5)
                .map(|_| {
                    let client = client.clone();
                    tokio::spawn(async move { client.request("silent", "").await })
                })
                .collect();
            eventually("5 requests", || server.seen.requests.lock().unwrap().len() == 5).await;
            assert!(matches!(client.request("close", "").await, Err(ClientError::Closed)));
            for task in waiting {
                assert!(matches!(task.await.unwrap(), Err(ClientError::Closed)), "{wire:?}");
            }
            assert_eq!(client.close_reason(), Some(CloseReason::ServerClosed));
            assert!(!client.kicked());
        }
    })
    .await;
}

#[tokio::test]
async fn local_close_fails_pending_requests_with_closed() {
    within(async {
        let server = FakeServer::start(Wire::Ws, Config::default()).await;
        let opts =
            ClientOptions { request_timeout: Duration::from_secs(3600), ..Default::default() };
        let (client, _) = Client::connect(&server.url(false), opts).await.unwrap();
        let pending = tokio::spawn({
            let client = client.clone();
            async move { client.request("silent", "").await }
        });
        eventually("the request", || server.seen.requests.lock().unwrap().len() == 1).await;
        client.close().await;
        assert!(client.is_closed());
        assert!(matches!(pending.await.unwrap(), Err(ClientError::Closed)));
        assert_eq!(client.close_reason(), Some(CloseReason::Local));
        client.closed().await;
        client.close().await;
    })
    .await;
}

#[tokio::test]
async fn dropping_every_handle_closes_the_connection() {
    within(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut header = [0u8; 4];
            tcp.read_exact(&mut header).await.unwrap();
            let mut body = vec![0; usize::from(header[3])];
            tcp.read_exact(&mut body).await.unwrap();
            let reply = br#"{"code":200,"sys":{"dict":{},"heartbeat":0,"serializer":"json"}}"#;
            tcp.write_all(&[1, 0, 0, reply.len() as u8]).await.unwrap();
            tcp.write_all(reply).await.unwrap();
            let mut rest = Vec::new();
            // Reads the ack, then EOF once the client is gone.
            tcp.read_to_end(&mut rest).await.unwrap();
            rest
        });
        let (client, pushes) = Client::connect(&addr, ClientOptions::default()).await.unwrap();
        drop(client);
        drop(pushes);
        assert_eq!(server.await.unwrap(), [2, 0, 0, 0]);
    })
    .await;
}

#[tokio::test]
async fn a_bad_packet_ends_the_connection_as_a_protocol_error() {
    within(async {
        let server = FakeServer::start(Wire::Tcp, Config::default()).await;
        let (client, _) =
            Client::connect(&server.url(false), ClientOptions::default()).await.unwrap();
        assert!(matches!(client.request("garbage", "").await, Err(ClientError::Closed)));
        let Some(CloseReason::Protocol(why)) = client.close_reason() else {
            panic!("{:?}", client.close_reason())
        };
        assert!(why.contains("unknown packet type 0x09"), "{why}");
    })
    .await;
}

#[tokio::test]
async fn connect_failures() {
    within(async {
        // Nobody listens: the port of a listener that was just dropped.
        let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let err = Client::connect(&format!("127.0.0.1:{port}"), ClientOptions::default()).await;
        assert!(matches!(err, Err(ClientError::Connect(_))), "{err:?}");

        // A server that accepts and then says nothing: the connect timeout applies.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _keep = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(tcp);
        });
        let opts =
            ClientOptions { connect_timeout: Duration::from_millis(100), ..Default::default() };
        let err = Client::connect(&addr.to_string(), opts).await;
        assert!(matches!(err, Err(ClientError::Timeout)), "{err:?}");

        let err = Client::connect("ftp://127.0.0.1:1", ClientOptions::default()).await;
        assert!(matches!(err, Err(ClientError::InvalidAddress { .. })), "{err:?}");
    })
    .await;
}
