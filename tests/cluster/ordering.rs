//! One session's forwarded messages reach the backend's handler in order while they are
//! pipelined (NATS) or sent one after another (gRPC), and a session whose handler sleeps
//! stalls no other session (issue 17; Go Pitaya issues #179, #312, #321).
//!
//! A test-only backend (`ord`) records the numbers it receives per client; the `testing`
//! example stays identical to Go's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use pitaya::{Component, Error, State};

use crate::inproc;
use crate::support::{sd_prefix, within};

/// Messages the first client sends in one burst.
const BURST: u64 = 1_000;
/// How long the first client's first message sleeps in the handler.
const NAP: Duration = Duration::from_secs(3);

/// What the backend saw: per client name, the numbers in the order they arrived.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<HashMap<String, Vec<u64>>>>);

/// Body `"<client>:<n>"`: records n for the client after up to 1.5 ms, sleeps [`NAP`] on
/// `slow:0`, echoes the body.
async fn record(State(seen): State<Seen>, body: Bytes) -> Result<Bytes, Error> {
    let text = String::from_utf8_lossy(&body).into_owned();
    let (client, n) = text.split_once(':').ok_or_else(|| Error::bad_request("no colon"))?;
    let n: u64 = n.parse().map_err(|_| Error::bad_request("not a number"))?;
    // Handling takes a varying time before it takes effect: messages run side by side
    // would be recorded out of order.
    tokio::time::sleep(Duration::from_micros((n % 4) * 500)).await;
    seen.0.lock().unwrap().entry(client.to_owned()).or_default().push(n);
    if client == "slow" && n == 0 {
        tokio::time::sleep(NAP).await;
    }
    Ok(body)
}

async fn record_notify(seen: State<Seen>, body: Bytes) {
    let _ = record(seen, body).await;
}

/// Runs `futures` to completion, polling the unfinished ones in index order on every
/// wake: each queues its packet on its first poll, and when the client's send queue is
/// full the waiting ones are given room in the order they asked but take it only when
/// polled, so polling in index order keeps the packets in that order.
async fn in_order(mut futures: Vec<Pin<Box<dyn Future<Output = ()> + Send>>>) {
    std::future::poll_fn(|cx| {
        futures.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futures.is_empty() { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
}

async fn ordering(grpc: bool) {
    within(async {
        let prefix = sd_prefix();
        let seen = Seen::default();
        let component =
            Component::new("ord").handler("request", record).handler("notify", record_notify);
        let back =
            inproc::builder(grpc, "ord", false, &prefix).component(component).state(seen.clone());
        let back = inproc::start(back).await;
        let front = inproc::start(inproc::builder(grpc, "connector", true, &prefix)).await;
        inproc::sees(&front, "ord").await;
        let opts = pitaya::client::ClientOptions {
            request_timeout: Duration::from_secs(60),
            ..pitaya::client::ClientOptions::default()
        };
        let (slow, _) = pitaya::client::Client::connect(&inproc::addr(&front), opts).await.unwrap();
        let (other, _) = crate::support::connect(&inproc::addr(&front)).await;

        // The whole burst is written before any answer is read: requests and notifies
        // alternate, and each future's first poll queues its packet, polled in order.
        let burst: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> = (0..BURST)
            .map(|n| {
                let slow = slow.clone();
                let send: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
                    let body = format!("slow:{n}");
                    if n % 2 == 0 {
                        let reply = slow.request("ord.ord.request", body.clone()).await;
                        assert_eq!(reply.expect("request answered").as_ref(), body.as_bytes());
                    } else {
                        slow.notify("ord.ord.notify", body).await.expect("notify sent");
                    }
                });
                send
            })
            .collect();
        let burst = tokio::spawn(in_order(burst));

        // While the slow client's first handler sleeps, the other client is served.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        for n in 0..20u64 {
            let body = format!("other:{n}");
            let reply = other.request("ord.ord.request", body.clone()).await.unwrap();
            assert_eq!(reply.as_ref(), body.as_bytes());
        }
        assert!(
            started.elapsed() < NAP,
            "the other client waited for the sleeping one: {:?}",
            started.elapsed()
        );

        burst.await.unwrap();
        let all_in = crate::support::eventually(Duration::from_secs(10), || {
            seen.0.lock().unwrap().get("slow").map_or(0, Vec::len) == BURST as usize
        })
        .await;
        let got = seen.0.lock().unwrap().clone();
        assert!(all_in, "the backend saw {} of {BURST}", got.get("slow").map_or(0, Vec::len));
        let want: Vec<u64> = (0..BURST).collect();
        if let Some(i) = got["slow"].iter().zip(&want).position(|(a, b)| a != b) {
            let window = &got["slow"][i.saturating_sub(3)..(i + 8).min(got["slow"].len())];
            panic!("the slow client's messages were reordered at {i}: {window:?}");
        }
        assert_eq!(got["other"], (0..20).collect::<Vec<_>>());
        slow.close().await;
        other.close().await;
        front.shutdown().await;
        back.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn one_sessions_pipelined_messages_arrive_in_order_over_nats() {
    ordering(false).await;
}

#[tokio::test]
async fn one_sessions_messages_arrive_in_order_over_grpc() {
    ordering(true).await;
}
