//! Per-connection rate limiting: packets over the quota are dropped and counted.

use std::time::Duration;

use futures_util::SinkExt;
use pitaya_acceptor::{AcceptorOptions, RateLimit, exceeded_rate_limiting_total};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{packet, tcp_pair, within, ws_pair};

fn limited() -> AcceptorOptions {
    let rate_limit = RateLimit { limit: 3, interval: Duration::from_secs(1) };
    AcceptorOptions { rate_limit: Some(rate_limit), ..AcceptorOptions::default() }
}

#[tokio::test]
async fn tcp_packets_over_the_limit_are_dropped_and_counted() {
    let (mut client, mut conn) = tcp_pair(limited()).await;
    // Heartbeats count like any packet (spec §4.4).
    let wire: Vec<u8> = (0..10).flat_map(|i| packet(if i % 2 == 0 { 3 } else { 4 }, b"")).collect();
    client.write_all(&wire).await.unwrap();
    client.shutdown().await.unwrap();

    let before = exceeded_rate_limiting_total();
    let mut received = 0;
    while within(conn.reader.read()).await.unwrap().is_some() {
        received += 1;
    }
    assert_eq!(received, 3);
    assert_eq!(conn.reader.dropped_by_rate_limit(), 7);
    // Other tests may drop packets at the same time: the process-wide count only grows.
    assert!(exceeded_rate_limiting_total() >= before + 7);
}

#[tokio::test]
async fn ws_packets_over_the_limit_are_dropped_and_counted() {
    let (mut client, mut conn) = ws_pair(limited(), "/").await;
    for _ in 0..10 {
        client.feed(Message::Binary(packet(3, b"").into())).await.unwrap();
    }
    client.close(None).await.unwrap();

    let mut received = 0;
    while within(conn.reader.read()).await.unwrap().is_some() {
        received += 1;
    }
    assert_eq!(received, 3);
    assert_eq!(conn.reader.dropped_by_rate_limit(), 7);
}
