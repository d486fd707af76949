//! Connection options against a real nats-server: `maxpingsoutstanding` and
//! `pinginterval` decide when a silent server is given up on (spec §6.1, §13.2), and
//! NATS-over-WebSocket URLs are refused at start.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pitaya_cluster::{DieSignal, RpcClient, RpcServer};
use pitaya_nats::{NatsRpcClient, NatsRpcServer};
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const PING_INTERVAL: Duration = Duration::from_millis(200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_is_given_up_on_after_maxpingsoutstanding_pings() {
    let target = nats_addr(&pitaya_test_services::shared_nats_url());
    let (patient, quick) =
        tokio::join!(client_notices_silence(target, 12), server_notices_silence(target, 1));
    // nats.go waits for 12 unanswered pings: at least 12 x 200ms = 2.4s, at most 2.6s. Ours
    // takes 2/3 to all of the longest; async-nats left alone would take at most 0.6s.
    assert!(patient >= Duration::from_millis(1200), "gave up too soon: {patient:?}");
    assert!(patient <= Duration::from_secs(8), "gave up too late: {patient:?}");
    // With 1 outstanding ping nats.go gives up within 2 x 200ms.
    assert!(quick < Duration::from_millis(1200), "gave up too late: {quick:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_urls_are_refused_at_start() {
    // Something listens there, so only the scheme can make the connection fail fast.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    for url in [format!("ws://127.0.0.1:{port}"), format!("nats://127.0.0.1:{port},wss://x")] {
        let config = client_config(&url);
        let client = NatsRpcClient::connect(&config, server("c", true), DieSignal::new());
        let err = bounded("client connect", client).await.err().expect("refused");
        assert_eq!(err.code(), "PIT-000");
        assert!(err.message().contains("pitaya.cluster.rpc.client.nats.connect"), "{err}");
        assert!(err.message().contains("not supported"), "{err}");

        let config = server_config(&url, 1, 1);
        let srv = NatsRpcServer::connect(&config, server("g", false), DieSignal::new());
        let err = bounded("server connect", srv).await.err().expect("refused");
        assert!(err.message().contains("pitaya.cluster.rpc.server.nats.connect"), "{err}");
    }
}

/// Connects an RPC client through a proxy, silences the proxy, and returns how long the
/// client took to reconnect (a new connection through the proxy, which lets new ones
/// through).
async fn client_notices_silence(target: SocketAddr, max_pings_outstanding: u32) -> Duration {
    let proxy = SilencingProxy::start(target).await;
    let mut config = client_config(&proxy.url());
    config.ping_interval = PING_INTERVAL;
    config.max_pings_outstanding = max_pings_outstanding;
    let connect = NatsRpcClient::connect(&config, server("c", true), DieSignal::new());
    let client = bounded("client connect", connect).await.expect("client connects");
    let took = proxy.time_to_reconnect().await;
    bounded("client stop", client.stop()).await;
    took
}

/// As [`client_notices_silence`], for the RPC server's connection.
async fn server_notices_silence(target: SocketAddr, max_pings_outstanding: u32) -> Duration {
    let proxy = SilencingProxy::start(target).await;
    let mut config = server_config(&proxy.url(), 1, 1);
    config.ping_interval = PING_INTERVAL;
    config.max_pings_outstanding = max_pings_outstanding;
    let connect = NatsRpcServer::connect(&config, server("g", false), DieSignal::new());
    let srv = bounded("server connect", connect).await.expect("server connects");
    let took = proxy.time_to_reconnect().await;
    bounded("server stop", srv.stop()).await;
    took
}

fn nats_addr(url: &str) -> SocketAddr {
    url.trim_start_matches("nats://").parse().expect("nats://IP:PORT")
}

/// A TCP proxy to nats-server that can go silent: connections open at that moment stop
/// carrying bytes but stay open (no FIN, no RST), as with a frozen server or a cut
/// network; only pings can tell. Later connections are carried normally.
struct SilencingProxy {
    addr: SocketAddr,
    accepted: Arc<Mutex<Vec<Instant>>>,
    /// Connections with an index below this are silenced. Dropping it releases them.
    silenced: watch::Sender<usize>,
}

impl SilencingProxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let (silenced, _) = watch::channel(0);
        let (log, watch) = (accepted.clone(), silenced.clone());
        tokio::spawn(async move {
            // Ends with the test's runtime; a test makes a handful of connections.
            while let Ok((mut client, _)) = listener.accept().await {
                let index = {
                    let mut log = log.lock().unwrap();
                    log.push(Instant::now());
                    log.len() - 1
                };
                let mut silence = watch.subscribe();
                tokio::spawn(async move {
                    let Ok(mut upstream) = TcpStream::connect(target).await else { return };
                    let silenced = async { silence.wait_for(|n| *n > index).await.is_ok() };
                    let silenced = tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => false,
                        s = silenced => s,
                    };
                    if silenced {
                        // Hold both sockets, unread, until the proxy is dropped.
                        while silence.changed().await.is_ok() {}
                    }
                });
            }
        });
        Self { addr, accepted, silenced }
    }

    fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Silences every connection made so far and waits (bounded) for the next one.
    async fn time_to_reconnect(&self) -> Duration {
        let before = self.accepted.lock().unwrap().len();
        assert!(before > 0, "nothing connected through the proxy");
        let silenced_at = Instant::now();
        self.silenced.send_replace(before);
        bounded("reconnection through the proxy", async {
            loop {
                if let Some(at) = self.accepted.lock().unwrap().get(before) {
                    return at.duration_since(silenced_at);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }
}
