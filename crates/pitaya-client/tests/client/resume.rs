//! Session resume (`docs/resume.md`) against a scripted frontend that keeps one session:
//! replay in both directions, fresh sessions, events, and the bytes of a client without
//! the option.
//!
//! Routes of the scripted server: `deaf` (answered, then the server ignores, and does not
//! count, every later packet of that connection), `cut` (counted, its answer and a push
//! queued, then the connection is closed before they are written), anything else echoed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pitaya_client::{Client, ClientError, ClientOptions, ResumeEvent, ResumeOptions};
use pitaya_codec::{
    HandshakeRequest, HandshakeResponse, Message, MessageCodec, MessageType, Packet, PacketDecoder,
    PacketType, ResumeGrant, ResumeRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{packet, within};

/// The one session the scripted server keeps.
#[derive(Default)]
struct Session {
    token: String,
    /// Every Data packet the server queued, in order (number = index + 1).
    sent: Vec<Bytes>,
    /// The client's Data packets read.
    received: u64,
    /// How many sessions were started.
    generation: u64,
}

#[derive(Default)]
struct Log {
    handshakes: Vec<String>,
    /// Request ids handled, in order, all connections together.
    requests: Vec<u64>,
}

struct Scripted {
    addr: String,
    log: Arc<Mutex<Log>>,
}

impl Scripted {
    /// `fresh_on_resume`: answer every resume with a fresh session.
    async fn start(fresh_on_resume: bool) -> Self {
        Self::with_heartbeat(fresh_on_resume, Duration::ZERO).await
    }

    /// Announces `heartbeat` but never sends one.
    async fn with_heartbeat(fresh_on_resume: bool, heartbeat: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Log::default()));
        let session = Arc::new(Mutex::new(Session::default()));
        let server_log = log.clone();
        tokio::spawn(async move {
            // One connection at a time: the client reconnects after the previous ended.
            while let Ok((tcp, _)) = listener.accept().await {
                serve(tcp, &session, &server_log, fresh_on_resume, heartbeat).await;
            }
        });
        Self { addr, log }
    }
}

async fn next(tcp: &mut TcpStream, buf: &mut BytesMut) -> Option<Packet> {
    loop {
        if let Some(p) = PacketDecoder::default().decode(buf).unwrap() {
            return Some(p);
        }
        if tcp.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

fn data(msg: &Message) -> Bytes {
    let mut buf = BytesMut::new();
    MessageCodec::new().encode_packet(msg, &mut buf).unwrap();
    buf.freeze()
}

async fn serve(
    mut tcp: TcpStream,
    session: &Mutex<Session>,
    log: &Mutex<Log>,
    fresh: bool,
    heartbeat: Duration,
) {
    let mut buf = BytesMut::new();
    let Some(hello) = next(&mut tcp, &mut buf).await else { return };
    log.lock().unwrap().handshakes.push(String::from_utf8_lossy(&hello.body).into_owned());
    let request = HandshakeRequest::decode(&hello.body).unwrap();
    let mut response = HandshakeResponse::new(200, heartbeat, Default::default(), "json");
    // The server's packets to replay after the ack.
    let mut replay = Vec::new();
    {
        let mut s = session.lock().unwrap();
        let new_session = |s: &mut Session| {
            s.generation += 1;
            s.token = format!("token-{}", s.generation);
            s.sent.clear();
            s.received = 0;
        };
        match request.sys.resume {
            None => {}
            Some(ResumeRequest::Ask) => {
                new_session(&mut s);
                response = response.with_resume(grant(&s, None));
            }
            Some(ResumeRequest::Resume { token, received }) => {
                if !fresh && token == s.token && received <= s.sent.len() as u64 {
                    replay = s.sent[received as usize..].to_vec();
                    s.generation += 1;
                    s.token = format!("token-{}", s.generation);
                    let m = s.received;
                    response = response.with_resume(grant(&s, Some(m)));
                } else {
                    new_session(&mut s);
                    response = response.with_resume(grant(&s, None).fresh());
                }
            }
        }
    }
    tcp.write_all(&packet(PacketType::Handshake, &response.encode())).await.unwrap();
    let Some(ack) = next(&mut tcp, &mut buf).await else { return };
    assert_eq!(ack.kind, PacketType::HandshakeAck);
    for p in replay {
        tcp.write_all(&p).await.unwrap();
    }
    let mut deaf = false;
    while let Some(p) = next(&mut tcp, &mut buf).await {
        if p.kind != PacketType::Data || deaf {
            continue;
        }
        let msg = MessageCodec::new().decode(p.body).unwrap();
        assert_eq!(msg.kind, MessageType::Request);
        log.lock().unwrap().requests.push(msg.id);
        let answer = data(&Message::response(msg.id, msg.data.clone()));
        {
            let mut s = session.lock().unwrap();
            s.received += 1;
            s.sent.push(answer.clone());
            if msg.route == "cut" {
                s.sent.push(data(&Message::push("onCut", msg.data)));
            }
        }
        match msg.route.as_str() {
            // Abandoned before the answer and the push are written.
            "cut" => return,
            "deaf" => deaf = true,
            _ => {}
        }
        tcp.write_all(&answer).await.unwrap();
    }
}

fn grant(s: &Session, received: Option<u64>) -> ResumeGrant {
    ResumeGrant { received, resumed: received.map(|_| true), token: s.token.clone(), ttl: 5 }
}

trait Fresh {
    fn fresh(self) -> Self;
}

impl Fresh for ResumeGrant {
    fn fresh(mut self) -> Self {
        self.resumed = Some(false);
        self
    }
}

fn resuming() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(5),
        resume: Some(ResumeOptions::default()),
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn without_the_option_the_handshake_has_no_resume_key() {
    within(async {
        let server = Scripted::start(false).await;
        let (client, _) = Client::connect(&server.addr, ClientOptions::default()).await.unwrap();
        assert_eq!(client.request("echo", "x").await.unwrap(), "x");
        assert_eq!(client.resume_token(), None);
        let with = Scripted::start(false).await;
        let (resumable, _) = Client::connect(&with.addr, resuming()).await.unwrap();
        assert_eq!(resumable.resume_token().as_deref(), Some("token-1"));
        assert_eq!(resumable.resume_ttl(), Some(Duration::from_secs(5)));
        let plain = server.log.lock().unwrap().handshakes[0].clone();
        let asked = with.log.lock().unwrap().handshakes[0].clone();
        assert!(!plain.contains("resume"), "{plain}");
        let expected = format!("{},\"resume\":true}}}}", plain.strip_suffix("}}").unwrap());
        assert_eq!(asked, expected);
        client.close().await;
        resumable.close().await;
    })
    .await;
}

#[tokio::test]
async fn packets_the_server_did_not_read_are_sent_again_after_a_resume() {
    within(async {
        let server = Scripted::start(false).await;
        let (client, _) = Client::connect(&server.addr, resuming()).await.unwrap();
        let mut events = client.events();
        assert_eq!(client.request("deaf", "d").await.unwrap(), "d");
        // The server ignores these five: they are numbered 2..=6 and kept.
        let pending: Vec<_> = (0..5)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move { client.request("echo", format!("r{i}")).await })
            })
            .collect();
        while client.resume_counters() != Some((1, 6)) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        client.cut_connection();
        for (i, task) in pending.into_iter().enumerate() {
            assert_eq!(task.await.unwrap().unwrap(), format!("r{i}"));
        }
        assert!(matches!(events.recv().await, Some(ResumeEvent::Dropped { .. })));
        assert_eq!(
            events.recv().await,
            Some(ResumeEvent::Resumed { resent: 5, token: "token-2".into() })
        );
        assert_eq!(client.resume_token().as_deref(), Some("token-2"));
        // Each request handled once: 1 (deaf), then 2..=6 re-sent on the new connection.
        assert_eq!(server.log.lock().unwrap().requests, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(client.unmatched_responses(), 0);
        assert!(!client.is_closed());
        client.close().await;
    })
    .await;
}

#[tokio::test]
async fn what_the_client_missed_is_replayed_by_the_server() {
    within(async {
        let server = Scripted::start(false).await;
        let (client, mut pushes) = Client::connect(&server.addr, resuming()).await.unwrap();
        let mut events = client.events();
        assert_eq!(client.request("echo", "a").await.unwrap(), "a");
        // Handled, answered and pushed while the connection goes away: both replayed.
        assert_eq!(client.request("cut", "c").await.unwrap(), "c");
        let push = pushes.recv().await.unwrap();
        assert_eq!((push.route.as_str(), &push.data[..]), ("onCut", &b"c"[..]));
        assert!(matches!(events.recv().await, Some(ResumeEvent::Dropped { .. })));
        assert_eq!(
            events.recv().await,
            Some(ResumeEvent::Resumed { resent: 0, token: "token-2".into() })
        );
        assert_eq!(client.resume_counters(), Some((3, 2)));
        assert_eq!(client.request("echo", "after").await.unwrap(), "after");
        assert_eq!(server.log.lock().unwrap().requests, vec![1, 2, 3]);
        assert!(pushes.try_recv().is_none());
        client.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_fresh_session_fails_the_requests_in_flight() {
    within(async {
        let server = Scripted::start(true).await;
        let (client, _) = Client::connect(&server.addr, resuming()).await.unwrap();
        let mut events = client.events();
        assert_eq!(client.request("deaf", "d").await.unwrap(), "d");
        let lost = {
            let client = client.clone();
            tokio::spawn(async move { client.request("echo", "lost").await })
        };
        while client.resume_counters() != Some((1, 2)) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        client.cut_connection();
        let err = lost.await.unwrap().unwrap_err();
        assert!(matches!(err, ClientError::SessionLost), "{err:?}");
        assert!(matches!(events.recv().await, Some(ResumeEvent::Dropped { .. })));
        assert_eq!(
            events.recv().await,
            Some(ResumeEvent::FreshSession { failed: 1, token: Some("token-2".into()) })
        );
        // Counting restarts: the next request is the new session's packet 1.
        assert_eq!(client.request("echo", "new").await.unwrap(), "new");
        assert_eq!(client.resume_counters(), Some((1, 1)));
        client.close().await;
    })
    .await;
}

#[tokio::test]
async fn without_a_server_the_client_gives_up_after_the_ttl() {
    within(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Grants a token with a one-second ttl, then closes and stops listening.
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = BytesMut::new();
            next(&mut tcp, &mut buf).await.unwrap();
            let grant = ResumeGrant { received: None, resumed: None, token: "t".into(), ttl: 1 };
            let response = HandshakeResponse::new(200, Duration::ZERO, Default::default(), "json")
                .with_resume(grant);
            tcp.write_all(&packet(PacketType::Handshake, &response.encode())).await.unwrap();
            next(&mut tcp, &mut buf).await.unwrap();
        });
        let (client, _) = Client::connect(&addr.to_string(), resuming()).await.unwrap();
        let mut events = client.events();
        server.await.unwrap();
        let started = tokio::time::Instant::now();
        client.closed().await;
        assert!(started.elapsed() >= Duration::from_millis(900));
        let reason = client.close_reason().unwrap().to_string();
        assert!(reason.contains("resume failed"), "{reason}");
        assert!(matches!(client.request("a", "b").await, Err(ClientError::Closed)));
        // The drop was reported, then the events end with the client.
        assert!(matches!(events.recv().await, Some(ResumeEvent::Dropped { .. })));
        assert_eq!(events.recv().await, None);
    })
    .await;
}

#[tokio::test]
async fn a_silent_server_is_a_drop_and_the_session_resumes() {
    within(async {
        // Three silent intervals of one second end the connection (heartbeat timeout).
        let server = Scripted::with_heartbeat(false, Duration::from_secs(1)).await;
        let (client, _) = Client::connect(&server.addr, resuming()).await.unwrap();
        let mut events = client.events();
        assert_eq!(client.request("echo", "a").await.unwrap(), "a");
        let dropped = events.recv().await;
        assert_eq!(
            dropped,
            Some(ResumeEvent::Dropped { reason: pitaya_client::CloseReason::HeartbeatTimeout })
        );
        assert!(matches!(events.recv().await, Some(ResumeEvent::Resumed { resent: 0, .. })));
        assert_eq!(client.request("echo", "b").await.unwrap(), "b");
        client.close().await;
    })
    .await;
}
