//! Group broadcast (spec §9): `room.message` reaches every member, in order.

use futures_util::future::join_all;

use crate::support::{Server, config, echo_builder, next_push, within};

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
