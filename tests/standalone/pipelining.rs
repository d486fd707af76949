//! Every request with a non-zero id gets exactly one response (spec §2.2, §2.5), in
//! order within a session, however many are in flight.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::future::join_all;
use pitaya::codec::Message;

use crate::support::{Server, config, echo_builder, encode, json, within};

const REQUESTS: u64 = 200;

/// The route of request `id` and the body it carries, cycling echo, fail and unknown.
fn mixed(id: u64) -> (&'static str, String) {
    match id % 3 {
        0 => ("room.echo", format!("body {id}")),
        1 => ("room.fail", String::new()),
        _ => ("room.nope", String::new()),
    }
}

/// Checks the answer to request `id` of [`mixed`].
fn check_answer(id: u64, error: bool, data: &[u8]) {
    let (route, body) = mixed(id);
    match route {
        "room.echo" => assert_eq!((error, data), (false, body.as_bytes()), "request {id}"),
        "room.fail" => {
            assert!(error, "request {id}");
            assert_eq!(json(data)["code"], "PIT-499", "request {id}");
        }
        _ => {
            assert!(error, "request {id}");
            assert_eq!(json(data)["code"], "PIT-404", "request {id}");
        }
    }
}

#[tokio::test]
async fn pipelined_requests_get_one_response_each_in_order() {
    within(async {
        let server = Server::start(echo_builder(config(&[]))).await;
        let mut raw = server.raw().await;
        raw.handshake().await;
        // All 200 in one write, before reading anything.
        let wire: Vec<u8> = (1..=REQUESTS)
            .flat_map(|id| {
                let (route, body) = mixed(id);
                encode(&Message::request(id, route, body))
            })
            .collect();
        raw.send(&wire).await;
        for id in 1..=REQUESTS {
            let msg = raw.message().await;
            assert_eq!(msg.id, id, "responses come back in request order");
            check_answer(id, msg.error, &msg.data);
        }
        // No duplicates: a request with id 0 is handled but never answered (spec §2.2),
        // so the next message must answer the request after it.
        raw.request(0, "room.echo", b"unanswered").await;
        raw.request(REQUESTS + 1, "room.echo", b"last").await;
        let msg = raw.message().await;
        assert_eq!((msg.id, &msg.data[..]), (REQUESTS + 1, &b"last"[..]));
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn invalid_routes_mixed_in_still_get_exactly_one_response() {
    within(async {
        let server = Server::start(echo_builder(config(&[]))).await;
        let mut raw = server.raw().await;
        raw.handshake().await;
        // Exactly one answer each; the order is checked by the next test.
        raw.send(&with_invalid_routes()).await;
        let mut answers = BTreeMap::new();
        for _ in 1..=REQUESTS {
            let msg = raw.message().await;
            assert!(answers.insert(msg.id, msg).is_none(), "a second answer to one request");
        }
        assert_eq!(answers.keys().copied().collect::<Vec<_>>(), (1..=REQUESTS).collect::<Vec<_>>());
        for (id, msg) in &answers {
            if id % 4 == 0 {
                assert!(msg.error);
                assert_eq!(json(&msg.data)["msg"], "route field can not be empty");
            } else {
                check_answer(*id, msg.error, &msg.data);
            }
        }
        raw.request(REQUESTS + 1, "room.echo", b"last").await;
        assert_eq!(raw.message().await.id, REQUESTS + 1, "no extra answers");
        server.shutdown().await;
    })
    .await;
}

/// 200 pipelined requests, every fourth with an unparsable route, sent in one write.
fn with_invalid_routes() -> Vec<u8> {
    (1..=REQUESTS)
        .flat_map(|id| {
            let (route, body) = if id % 4 == 0 { ("bad..route", String::new()) } else { mixed(id) };
            encode(&Message::request(id, route, body))
        })
        .collect()
}

#[tokio::test]
async fn invalid_route_answers_keep_request_order() {
    within(async {
        let server = Server::start(echo_builder(config(&[]))).await;
        let mut raw = server.raw().await;
        raw.handshake().await;
        raw.send(&with_invalid_routes()).await;
        for id in 1..=REQUESTS {
            assert_eq!(raw.message().await.id, id, "responses come back in request order");
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn concurrent_requests_from_one_client_all_resolve() {
    within(async {
        let server = Server::start(echo_builder(config(&[]))).await;
        let (client, _pushes) = server.client().await;
        let results = join_all((1..=REQUESTS).map(|id| {
            let (route, body) = mixed(id);
            let client = client.clone();
            async move { (id, client.request(route, Bytes::from(body)).await) }
        }))
        .await;
        for (id, result) in results {
            match result {
                Ok(data) => check_answer(id, false, &data),
                Err(pitaya::client::ClientError::Server(e)) => {
                    check_answer(id, true, &serde_json::to_vec(&e).unwrap());
                }
                Err(e) => panic!("request {id}: {e}"),
            }
        }
        client.close().await;
        server.shutdown().await;
    })
    .await;
}
