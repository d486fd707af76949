//! Requests and notifies: echo, concurrency, error responses, compression, timeouts.

use std::collections::BTreeMap;
use std::time::Duration;

use pitaya_client::{Client, ClientError, ClientOptions};
use pitaya_serialize::SerializerKind;

use crate::support::{Config, FakeServer, Wire, eventually, within};

async fn connect(server: &FakeServer, opts: ClientOptions) -> Client {
    Client::connect(&server.url(false), opts).await.unwrap().0
}

#[tokio::test]
async fn request_response_over_tcp_and_ws() {
    within(async {
        for wire in [Wire::Tcp, Wire::Ws] {
            let server = FakeServer::start(wire, Config::default()).await;
            let client = connect(&server, ClientOptions::default()).await;
            assert_eq!(client.request("room.echo", "hello").await.unwrap(), "hello", "{wire:?}");
            assert_eq!(client.request("room.echo", "").await.unwrap(), "", "{wire:?}");
            assert_eq!(client.handshake_response().code, 200);
            assert_eq!(client.serializer(), Some(SerializerKind::Json));
            let hs = server.seen.handshakes.lock().unwrap()[0].clone();
            assert_eq!(hs.sys.platform, "rust");
            assert_eq!(hs.sys.lib_version, env!("CARGO_PKG_VERSION"));
            assert_eq!(server.seen.acks.load(std::sync::atomic::Ordering::SeqCst), 1);
            let ids: Vec<u64> = server.seen.requests.lock().unwrap().iter().map(|r| r.0).collect();
            assert_eq!(ids, [1, 2], "{wire:?}: ids start at 1");
            client.close().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_get_their_own_answers() {
    within(async {
        for wire in [Wire::Tcp, Wire::Ws] {
            let server = FakeServer::start(wire, Config::default()).await;
            let client = connect(&server, ClientOptions::default()).await;
            let tasks: Vec<_> = (0..50)
                .map(|i| {
                    let client = client.clone();
                    // Later requests are answered sooner, so answers come back out of order.
                    let data = format!("{} payload-{i}", (50 - i) % 17 * 3);
                    tokio::spawn(async move {
                        let route = if i % 2 == 0 { "delay" } else { "room.echo" };
                        let answer = client.request(route, data.clone()).await.unwrap();
                        assert_eq!(answer, data);
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            let mut ids: Vec<u64> =
                server.seen.requests.lock().unwrap().iter().map(|r| r.0).collect();
            ids.sort_unstable();
            assert_eq!(ids, (1..=50).collect::<Vec<_>>());
        }
    })
    .await;
}

#[tokio::test]
async fn error_responses_surface_as_server_errors() {
    within(async {
        for serializer in [SerializerKind::Json, SerializerKind::Protobuf] {
            let config = Config { serializer, ..Config::default() };
            let server = FakeServer::start(Wire::Tcp, config).await;
            let client = connect(&server, ClientOptions::default()).await;
            let err = client.request("fail", "{}").await.unwrap_err();
            let ClientError::Server(payload) = &err else { panic!("{err:?}") };
            assert_eq!((payload.code.as_str(), payload.msg.as_str()), ("PIT-499", "fail"));
            assert_eq!(payload.metadata.get("route").map(String::as_str), Some("fail"));
            assert_eq!(err.server_code(), Some("PIT-499"));
            assert_eq!(err.to_string(), "server error PIT-499: fail");
            // An error response leaves the connection usable.
            assert_eq!(client.request("a.b", "x").await.unwrap(), "x");
        }
    })
    .await;
}

#[tokio::test]
async fn compressed_responses_and_requests() {
    within(async {
        let config = Config { compress_data: true, ..Config::default() };
        let server = FakeServer::start(Wire::Tcp, config).await;
        let opts = ClientOptions { compress_requests: true, ..ClientOptions::default() };
        let client = connect(&server, opts).await;
        let big = "pitaya ".repeat(500);
        assert_eq!(client.request("room.echo", big.clone()).await.unwrap(), big);
        // Short data is sent as is: compression only when it shrinks.
        assert_eq!(client.request("room.echo", "x").await.unwrap(), "x");
        let flags = server.seen.flags.lock().unwrap().clone();
        assert_eq!(flags, [0x10, 0x00]);
        let err = client.request("fail", "").await.unwrap_err();
        assert_eq!(err.server_code(), Some("PIT-499"));
    })
    .await;
}

#[tokio::test]
async fn dict_routes_are_sent_as_codes_unless_disabled() {
    within(async {
        let dict = BTreeMap::from([("room.echo".to_owned(), 3), ("onMessage".to_owned(), 7)]);
        let config = Config { dict, compress_handshake: true, ..Config::default() };
        let server = FakeServer::start(Wire::Tcp, config).await;
        let client = connect(&server, ClientOptions::default()).await;
        assert_eq!(client.handshake_response().sys.dict.get("room.echo"), Some(&3));
        assert_eq!(client.request("room.echo", "a").await.unwrap(), "a");
        assert_eq!(client.request("room.other", "b").await.unwrap(), "b");
        client.notify("room.echo", "n").await.unwrap();
        eventually("the notify", || !server.seen.notifies.lock().unwrap().is_empty()).await;

        let opts = ClientOptions { use_dict: false, ..ClientOptions::default() };
        let plain = connect(&server, opts).await;
        assert_eq!(plain.request("room.echo", "c").await.unwrap(), "c");
        assert_eq!(*server.seen.flags.lock().unwrap(), [0x01, 0x00, 0x03, 0x00]);
        let routes: Vec<String> =
            server.seen.requests.lock().unwrap().iter().map(|r| r.1.clone()).collect();
        assert_eq!(routes, ["room.echo", "room.other", "room.echo"]);
    })
    .await;
}

#[tokio::test]
async fn notifies_reach_the_server() {
    within(async {
        let server = FakeServer::start(Wire::Ws, Config::default()).await;
        let client = connect(&server, ClientOptions::default()).await;
        client.notify("chat.say", "one").await.unwrap();
        client.notify("chat.say", "two").await.unwrap();
        eventually("two notifies", || server.seen.notifies.lock().unwrap().len() == 2).await;
        let notifies = server.seen.notifies.lock().unwrap().clone();
        assert_eq!(notifies[0], ("chat.say".to_owned(), "one".into()));
        assert_eq!(notifies[1], ("chat.say".to_owned(), "two".into()));
    })
    .await;
}

#[tokio::test]
async fn unanswered_requests_time_out_and_late_answers_are_dropped() {
    within(async {
        let server = FakeServer::start(Wire::Tcp, Config::default()).await;
        let opts = ClientOptions {
            request_timeout: Duration::from_millis(100),
            ..ClientOptions::default()
        };
        let client = connect(&server, opts).await;
        assert!(matches!(client.request("silent", "").await, Err(ClientError::Timeout)));
        let late = client.request_with_timeout("delay", "300 late", Duration::from_millis(50));
        assert!(matches!(late.await, Err(ClientError::Timeout)));
        // The connection survives, and the late answer does not go to anyone else.
        let slow = client.request_with_timeout("delay", "400 mine", Duration::from_secs(5));
        assert_eq!(slow.await.unwrap(), "400 mine");
        assert!(!client.is_closed());
    })
    .await;
}

#[tokio::test]
async fn oversized_routes_are_refused_locally() {
    within(async {
        let server = FakeServer::start(Wire::Tcp, Config::default()).await;
        let client = connect(&server, ClientOptions::default()).await;
        let route = "r".repeat(256);
        assert!(matches!(client.request(&route, "").await, Err(ClientError::Encode(_))));
        assert!(matches!(client.notify(&route, "").await, Err(ClientError::Encode(_))));
        assert_eq!(client.request("a.b", "still fine").await.unwrap(), "still fine");
    })
    .await;
}

#[tokio::test]
async fn large_payloads_round_trip() {
    within(async {
        for wire in [Wire::Tcp, Wire::Ws] {
            let server = FakeServer::start(wire, Config::default()).await;
            let client = connect(&server, ClientOptions::default()).await;
            let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
            let small = client.request("room.echo", "small");
            let large = client.request("room.echo", big.clone());
            let (small, large) = tokio::join!(small, large);
            assert_eq!(small.unwrap(), "small");
            assert_eq!(large.unwrap(), big, "{wire:?}");
        }
    })
    .await;
}
