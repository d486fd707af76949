//! Pushes: order, dictionary-coded routes, compression, a full channel.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use pitaya_client::{Client, ClientOptions, CloseReason, Push};

use crate::support::{Config, FakeServer, Wire, eventually, within};

fn numbered(n: usize) -> Vec<Push> {
    (0..n).map(|i| Push { route: "onMessage".into(), data: i.to_string().into() }).collect()
}

#[tokio::test]
async fn pushes_arrive_in_order_over_tcp_and_ws() {
    within(async {
        for wire in [Wire::Tcp, Wire::Ws] {
            let server = FakeServer::start(wire, Config::default()).await;
            let (client, mut pushes) =
                Client::connect(&server.url(false), ClientOptions::default()).await.unwrap();
            assert_eq!(client.request("push", "20").await.unwrap(), "ok");
            let mut got = Vec::new();
            for _ in 0..20 {
                got.push(pushes.recv().await.unwrap());
            }
            assert_eq!(got, numbered(20), "{wire:?}");
            assert!(pushes.try_recv().is_none());
            client.close().await;
            // After the close, the stream ends.
            assert_eq!(pushes.next().await, None);
        }
    })
    .await;
}

#[tokio::test]
async fn dict_coded_and_compressed_pushes_are_decoded() {
    within(async {
        let dict = BTreeMap::from([("onMessage".to_owned(), 7)]);
        let config = Config { dict, compress_data: true, ..Config::default() };
        let server = FakeServer::start(Wire::Tcp, config).await;
        let (client, mut pushes) =
            Client::connect(&server.url(false), ClientOptions::default()).await.unwrap();
        assert_eq!(client.request("push", "3").await.unwrap(), "ok");
        for expected in numbered(3) {
            assert_eq!(pushes.recv().await.unwrap(), expected);
        }
    })
    .await;
}

#[tokio::test]
async fn without_the_dict_a_coded_push_ends_the_connection() {
    within(async {
        let dict = BTreeMap::from([("onMessage".to_owned(), 7)]);
        let server = FakeServer::start(Wire::Tcp, Config { dict, ..Config::default() }).await;
        let opts = ClientOptions { use_dict: false, ..ClientOptions::default() };
        let (client, _pushes) = Client::connect(&server.url(false), opts).await.unwrap();
        assert!(client.request("push", "1").await.is_err());
        client.closed().await;
        assert!(matches!(client.close_reason(), Some(CloseReason::Protocol(_))));
    })
    .await;
}

#[tokio::test]
async fn a_full_push_channel_drops_pushes_but_not_responses() {
    within(async {
        let server = FakeServer::start(Wire::Tcp, Config::default()).await;
        let opts = ClientOptions { push_buffer: 2, ..ClientOptions::default() };
        let (client, mut pushes) = Client::connect(&server.url(false), opts).await.unwrap();
        assert_eq!(client.request("push", "10").await.unwrap(), "ok");
        assert_eq!(client.dropped_pushes(), 8);
        assert_eq!(pushes.len(), 2);
        assert_eq!(pushes.recv().await.unwrap(), numbered(1)[0]);
        // Room again: the next pushes get through.
        assert_eq!(client.request("push", "1").await.unwrap(), "ok");
        eventually("two buffered pushes", || pushes.len() == 2).await;
    })
    .await;
}

#[tokio::test]
async fn dropping_pushes_does_not_disturb_requests() {
    within(async {
        let server = FakeServer::start(Wire::Ws, Config::default()).await;
        let (client, pushes) =
            Client::connect(&server.url(false), ClientOptions::default()).await.unwrap();
        drop(pushes);
        assert_eq!(client.request("push", "5").await.unwrap(), "ok");
        assert_eq!(client.dropped_pushes(), 0);
    })
    .await;
}
