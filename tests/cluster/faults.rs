//! Faults: a backend killed or stopped under load, NATS and etcd restarted. Clients
//! must always get an answer (an error at worst, never a hang) and the cluster must
//! converge again within seconds, without ghost servers.

use std::time::{Duration, Instant};

use pitaya::client::Client;

use crate::support::{Launch, ServerProc, connect, launch, registered, sd_prefix, within};

/// Lease TTL for these tests: a killed server must leave discovery quickly.
const TTL: (&str, &str) = ("PITAYA_CLUSTER_SD_ETCD_HEARTBEAT_TTL", "3s");
const ROUTE: &str = "game.testsvc.testrequestreturnsptr";
/// Longest a request may take in these tests: the NATS request timeout (5 s) plus
/// slack. Anything longer counts as a hang.
const ANSWER_LIMIT: Duration = Duration::from_secs(8);

fn with_env<'a>(mut l: Launch<'a>, env: &[(&str, &str)]) -> Launch<'a> {
    l.env.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    l
}

/// Sends one request and reports whether it succeeded; panics if it hangs.
async fn probe(c: &Client) -> bool {
    let started = Instant::now();
    let res = tokio::time::timeout(ANSWER_LIMIT, c.request(ROUTE, r#"{"msg":"ping"}"#))
        .await
        .unwrap_or_else(|_| panic!("a request hung for {ANSWER_LIMIT:?}"));
    assert!(started.elapsed() < ANSWER_LIMIT);
    matches!(res, Ok(ref body) if &body[..] == br#"{"code":200,"msg":"ping"}"#)
}

/// Probes until `n` consecutive successes, for at most `limit`; returns whether reached.
async fn recovers(c: &Client, n: usize, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut streak = 0;
    while Instant::now() < deadline {
        if probe(c).await {
            streak += 1;
            if streak == n {
                return true;
            }
        } else {
            streak = 0;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    false
}

#[tokio::test]
async fn killed_backend_gives_errors_not_hangs_and_is_routed_around() {
    killed_backend_gives_errors_not_hangs_and_is_routed_around_over(false).await;
}

#[tokio::test]
async fn killed_backend_gives_errors_not_hangs_and_is_routed_around_grpc() {
    killed_backend_gives_errors_not_hangs_and_is_routed_around_over(true).await;
}

async fn killed_backend_gives_errors_not_hangs_and_is_routed_around_over(grpc: bool) {
    within(async {
        let prefix = sd_prefix();
        let mut b1 =
            launch(&with_env(Launch { grpc, ..Launch::new("game", false, &prefix) }, &[TTL]));
        let _b2 = launch(&with_env(Launch { grpc, ..Launch::new("game", false, &prefix) }, &[TTL]));
        let front =
            launch(&with_env(Launch { grpc, ..Launch::new("connector", true, &prefix) }, &[TTL]));
        let (c, _p) = connect(&front.addr).await;
        assert!(recovers(&c, 10, Duration::from_secs(10)).await, "cluster never worked");
        // Clients keep sending while the backend dies: requests in flight on it fail
        // (timeout) and the rest succeed or fail fast; none may hang.
        let load: Vec<_> = (0..4)
            .map(|_| {
                let addr = front.addr.clone();
                tokio::spawn(async move {
                    let (c, _p) = connect(&addr).await;
                    let (mut ok, mut failed) = (0, 0);
                    let until = Instant::now() + Duration::from_secs(3);
                    while Instant::now() < until {
                        if probe(&c).await { ok += 1 } else { failed += 1 }
                    }
                    (ok, failed)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        b1.kill();
        for task in load {
            let (ok, failed) = task.await.expect("a load task panicked (a request hung)");
            eprintln!("load client: {ok} answered, {failed} failed around the kill");
            assert!(ok > 0);
        }
        // Lease 3 s + watch: from then on every request reaches the live backend.
        assert!(
            recovers(&c, 30, Duration::from_secs(15)).await,
            "still routing to the dead backend"
        );
    })
    .await;
}

#[tokio::test]
async fn graceful_stop_deregisters_at_once_and_a_restart_is_seen_again() {
    graceful_stop_deregisters_at_once_and_a_restart_is_seen_again_over(false).await;
}

#[tokio::test]
async fn graceful_stop_deregisters_at_once_and_a_restart_is_seen_again_grpc() {
    graceful_stop_deregisters_at_once_and_a_restart_is_seen_again_over(true).await;
}

async fn graceful_stop_deregisters_at_once_and_a_restart_is_seen_again_over(grpc: bool) {
    within(async {
        let prefix = sd_prefix();
        let etcd = pitaya_test_services::shared_etcd_endpoint();
        let front = launch(&Launch { grpc, ..Launch::new("connector", true, &prefix) });
        let mut back = launch(&Launch { grpc, ..Launch::new("game", false, &prefix) });
        let (c, _p) = connect(&front.addr).await;
        assert!(recovers(&c, 5, Duration::from_secs(10)).await);
        assert_eq!(registered(&etcd, &prefix).len(), 2);
        assert!(back.terminate(Duration::from_secs(10)), "SIGTERM did not stop the backend");
        // Deregistration is the first step of shutdown: no lease expiry to wait for.
        assert_eq!(registered(&etcd, &prefix).len(), 1, "backend key left behind");
        // Without a backend the frontend answers at once.
        let e = c.request(ROUTE, "{}").await.unwrap_err();
        assert_eq!(e.server_code(), Some("PIT-500"));
        let _again: ServerProc = launch(&Launch { grpc, ..Launch::new("game", false, &prefix) });
        assert!(recovers(&c, 5, Duration::from_secs(10)).await, "restarted backend not used");
        assert_eq!(registered(&etcd, &prefix).len(), 2);
    })
    .await;
}

#[tokio::test]
async fn nats_restart_is_survived() {
    within(async {
        let mut nats = pitaya_test_services::Nats::start();
        let prefix = sd_prefix();
        let on_private_nats =
            |l: Launch<'_>| -> ServerProc { launch(&Launch { nats_url: nats.url(), ..l }) };
        let _back = on_private_nats(Launch::new("game", false, &prefix));
        let front = on_private_nats(Launch::new("connector", true, &prefix));
        let (c, _p) = connect(&front.addr).await;
        assert!(recovers(&c, 5, Duration::from_secs(10)).await);
        nats.stop();
        // While NATS is down a request fails within the request timeout, never hangs.
        // Down for about 5 s: well inside Go's reconnect budget (15 tries, 1 s apart),
        // after which a server gives up and shuts down, as Go's does.
        assert!(!probe(&c).await, "a request succeeded with NATS down");
        nats.restart();
        assert!(recovers(&c, 10, Duration::from_secs(20)).await, "no recovery after NATS restart");
    })
    .await;
}

#[tokio::test]
async fn etcd_restart_is_survived_without_ghosts() {
    within(async {
        let mut etcd = pitaya_test_services::Etcd::start();
        let prefix = sd_prefix();
        let endpoint = etcd.endpoint();
        let on_private_etcd = |l: Launch<'_>| -> ServerProc {
            launch(&Launch { etcd_endpoint: endpoint.clone(), ..l })
        };
        let _back = on_private_etcd(Launch::new("game", false, &prefix));
        let front = on_private_etcd(Launch::new("connector", true, &prefix));
        let (c, _p) = connect(&front.addr).await;
        assert!(recovers(&c, 5, Duration::from_secs(10)).await);
        etcd.stop();
        // Discovery keeps its last view: traffic goes on while etcd is away.
        assert!(recovers(&c, 5, Duration::from_secs(10)).await, "traffic stopped with etcd");
        etcd.restart();
        let deadline = Instant::now() + Duration::from_secs(20);
        while registered(&endpoint, &prefix).len() != 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            registered(&endpoint, &prefix).len(),
            2,
            "servers did not re-register exactly once"
        );
        assert!(recovers(&c, 10, Duration::from_secs(10)).await);
    })
    .await;
}

/// Go's e2e harness stops reading the server's stderr after the ready line. With debug
/// logging, thousands of forwarded requests write far more than a pipe holds: the server
/// must drop log lines rather than stall.
#[tokio::test]
async fn unread_stderr_never_stalls_the_server() {
    within(async {
        let prefix = sd_prefix();
        let _back = launch(&Launch::new("game", false, &prefix));
        let front = launch(&Launch::new("connector", true, &prefix));
        let (c, _p) = connect(&front.addr).await;
        let payload = "x".repeat(512);
        for i in 0..2000 {
            let body = tokio::time::timeout(
                ANSWER_LIMIT,
                c.request("game.testsvc.testrequestreceivereturnsraw", payload.clone()),
            )
            .await
            .unwrap_or_else(|_| panic!("request {i} hung"))
            .unwrap();
            assert_eq!(body.len(), 512);
        }
    })
    .await;
}
