//! Heartbeats (spec §1.6) with a one-second interval, and kicks (spec §1.7).

use std::time::Duration;

use pitaya::client::CloseReason;
use pitaya::codec::PacketType;
use tokio::time::Instant;

use crate::support::{
    FAST_HEARTBEAT, HEARTBEAT, KICK, Server, config, echo_builder, test_component, wait, within,
};

#[tokio::test]
async fn server_sends_a_heartbeat_every_interval_from_accept() {
    within(async {
        let server = Server::start(echo_builder(config(&[FAST_HEARTBEAT]))).await;
        let mut raw = server.raw().await;
        // Go's ticker starts at accept: the first heartbeat precedes any handshake.
        let first = raw.packet().await.expect("a heartbeat before the handshake");
        assert_eq!((first.kind, first.body.len()), (PacketType::Heartbeat, 0));
        raw.handshake().await;
        // Answering each one keeps the connection alive while we count three more.
        let mut count = 0;
        while count < 3 {
            let packet = raw.packet().await.expect("still connected");
            assert_eq!(packet.kind, PacketType::Heartbeat, "nothing else is sent");
            count += 1;
            raw.send(HEARTBEAT).await;
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn silent_client_is_closed_after_two_intervals() {
    within(async {
        let server = Server::start(echo_builder(config(&[FAST_HEARTBEAT]))).await;
        let mut raw = server.raw().await;
        raw.handshake().await;
        let silent_since = Instant::now();
        raw.expect_silent_close("silent client").await;
        assert!(raw.heartbeats >= 1, "heartbeats kept coming until the server gave up");
        // A lower bound, not a speed check: closing earlier would break clients that
        // follow the protocol (spec §1.6: between 2H and 3H of silence).
        let silent_for = silent_since.elapsed();
        assert!(silent_for >= Duration::from_millis(1900), "closed after only {silent_for:?}");
        server.assert_healthy().await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn clients_that_keep_talking_stay_connected() {
    within(async {
        let server = Server::start(echo_builder(config(&[FAST_HEARTBEAT]))).await;
        // The client crate answers with its own heartbeat every interval.
        let (client, _pushes) = server.client().await;
        // A raw peer that never sends a heartbeat: any packet counts as liveness.
        let mut raw = server.raw().await;
        raw.handshake().await;
        for id in 1..=8 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            raw.request(id, "room.echo", b"alive").await;
            assert_eq!(raw.message().await.id, id);
        }
        // Four seconds: past the 2-3 s after which a silent peer is closed.
        assert!(!client.is_closed(), "{:?}", client.close_reason());
        assert_eq!(client.request("room.echo", "ok").await.expect("still served"), "ok");
        assert!(client.server_heartbeats() >= 2);
        assert!(raw.heartbeats >= 2);
        client.close().await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn kick_sends_exactly_the_kick_packet_then_closes() {
    within(async {
        let server = Server::start(echo_builder(config(&[])).component(test_component())).await;

        // AppHandle::kick_uid, watched byte by byte.
        let mut raw = server.raw().await;
        raw.handshake().await;
        raw.request(1, "test.bind", b"alice").await;
        assert_eq!(raw.message().await.data, "bound");
        server.handle().kick_uid("alice").await.expect("alice is online");
        assert_eq!(raw.bytes_until_close().await, KICK);

        // Session::kick, seen by the client crate.
        let (client, _pushes) = server.client().await;
        client.request("test.bind", "bob").await.expect("bind bob");
        let session = server.handle().sessions().by_uid("bob").expect("bob's session");
        session.kick().await.expect("kick bob");
        wait("the kicked client to close", client.closed()).await;
        assert!(client.kicked());
        assert_eq!(client.close_reason(), Some(CloseReason::Kicked));

        let missing = server.handle().kick_uid("nobody").await.expect_err("nobody is online");
        assert_eq!(missing.message(), "session not found");
        server.assert_healthy().await;
        server.shutdown().await;
    })
    .await;
}
