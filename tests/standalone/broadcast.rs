//! Group broadcast (spec §9): `room.message` reaches every member, in order, and a member
//! that stops reading never holds the others up.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;

use crate::support::{Raw, Server, config, echo_builder, next_push, within};

const MEMBERS: usize = 50;
const MESSAGES: usize = 5;

#[tokio::test]
async fn broadcast_reaches_fifty_members_in_order() {
    within(async {
        let server = Server::start(echo_builder(config(&[]))).await;
        let mut clients = Vec::with_capacity(MEMBERS);
        for i in 0..MEMBERS {
            // Half of them over WebSocket: one group spans both transports.
            clients.push(server.connect(i % 2 == 1).await);
        }
        let joins = join_all(clients.iter().map(|(c, _)| c.request("room.join", ""))).await;
        for (i, joined) in joins.into_iter().enumerate() {
            assert_eq!(
                joined.unwrap_or_else(|e| panic!("client {i} joins: {e}")),
                r#"{"code":200}"#
            );
        }
        let members = server.handle().groups().members("room").await.expect("group room");
        assert_eq!(members.len(), MEMBERS);

        let sender = clients[0].0.clone();
        for m in 0..MESSAGES {
            sender.notify("room.message", format!("message {m}")).await.expect("notify");
        }
        for (i, (_, pushes)) in clients.iter_mut().enumerate() {
            for m in 0..MESSAGES {
                let push = next_push(pushes).await;
                assert_eq!(push.route, "onMessage", "client {i}");
                assert_eq!(push.data, format!("message {m}"), "client {i}, message {m}");
            }
        }
        for (client, _) in &clients {
            assert_eq!(client.dropped_pushes(), 0);
            client.close().await;
        }
        server.shutdown().await;
    })
    .await;
}

/// Push body size and count: enough to fill a member's socket buffers and its outgoing
/// queue many times over once it stops reading (compression is off below).
const BIG: usize = 32 * 1024;
const BROADCASTS: usize = 400;

/// The body of broadcast `m`: its number, then filler, `BIG` bytes in all.
fn big_body(m: usize) -> Bytes {
    let mut body = format!("{m:06}").into_bytes();
    body.resize(BIG, b'.');
    Bytes::from(body)
}

#[tokio::test]
async fn a_member_that_stops_reading_never_holds_up_a_broadcast_and_is_closed() {
    within(async {
        // A write timeout longer than WAIT: a sender that waited even once for the member
        // that stopped reading would leave the reading member without a push for longer
        // than `next_push` allows. Compression off, so that pushes fill buffers.
        let server = Server::start(echo_builder(config(&[
            ("pitaya.buffer.agent.conntimeout", "8s"),
            ("pitaya.buffer.agent.messages", "8"),
            ("pitaya.handler.messages.compression", "false"),
        ])))
        .await;
        let mut slow = Raw::connect_small_window(server.addr(false)).await;
        slow.handshake().await;
        slow.request(1, "room.join", b"").await;
        let joined = slow.message().await;
        assert_eq!((joined.id, &joined.data[..]), (1, &br#"{"code":200}"#[..]));
        // From here on `slow` reads nothing until the end.

        let (reader, mut pushes) = server.client().await;
        assert_eq!(reader.request("room.join", "").await.expect("join"), r#"{"code":200}"#);
        let (sender, _sender_pushes) = server.client().await;
        for m in 0..BROADCASTS {
            sender.notify("room.message", big_body(m)).await.expect("notify");
        }
        for m in 0..BROADCASTS {
            let push = next_push(&mut pushes).await;
            assert_eq!(push.route, "onMessage");
            assert!(push.data == big_body(m), "push {m} to the reading member");
        }
        assert_eq!(reader.dropped_pushes(), 0);

        // The member that stopped reading is closed once its queue has been full for the
        // write timeout. It must not read before: it would be a slow reader catching up,
        // which keeps its connection.
        let closed = async {
            while server.handle().sessions().count() > 2 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), closed)
            .await
            .expect("the member that stopped reading is closed");
        // It got some of the pushes, never all of them.
        let most = BROADCASTS * (BIG + 64) + 4096;
        let got = slow.drain_until_close(Duration::from_secs(10), most).await;
        assert!(got < BROADCASTS * BIG, "the slow member got every push: {got} bytes");
        // The others are still served.
        let again = reader.request("room.echo", "still here").await.expect("echo");
        assert_eq!(again, "still here");
        for client in [reader, sender] {
            client.close().await;
        }
        server.shutdown().await;
    })
    .await;
}
