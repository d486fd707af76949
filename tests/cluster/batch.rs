//! Pushes to many users across frontends: one `sys.pushbatch` per frontend when every
//! frontend of the type is a pitaya-rs server, Go's one message per uid as soon as one is
//! not (issue 17, spec §8.4). Every user gets its push exactly once either way.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use pitaya::cluster::protos;
use pitaya::{AppHandle, Component, Error, Json, Session};
use prost::Message;

use crate::inproc;
use crate::support::{sd_prefix, wait, within};

/// Users per frontend.
const PER_FRONT: usize = 10;

async fn bind(s: Session, uid: Bytes) -> Result<Bytes, Error> {
    s.bind(&String::from_utf8_lossy(&uid)).await?;
    Ok(Bytes::from_static(b"ok"))
}

/// Pushes `onPush` to the given uids on the connectors; replies the uids that failed.
async fn push_all(
    app: AppHandle,
    Json(uids): Json<Vec<String>>,
) -> Result<Json<Vec<String>>, Error> {
    Ok(Json(
        app.send_push_to_users("onPush", Bytes::from_static(b"hello"), &uids, "connector").await,
    ))
}

/// Registers a frontend of type `connector` by hand that answers every request with a
/// `PIT-404` error, as a Go frontend answers `sys.pushbatch`, and counts them.
async fn go_like_frontend(
    prefix: &str,
    nc: &async_nats::Client,
    asked: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    let id = uuid::Uuid::new_v4().to_string();
    let mut sub = nc.subscribe(format!("pitaya/servers/connector/{id}")).await.unwrap();
    nc.flush().await.unwrap();
    let value = format!(
        r#"{{"id":"{id}","type":"connector","metadata":{{}},"frontend":true,"hostname":"vm"}}"#
    );
    let status = std::process::Command::new("etcdctl")
        .args(["--endpoints", &pitaya_test_services::shared_etcd_endpoint()])
        .args(["put", &format!("{prefix}servers/connector/{id}"), &value])
        .env("ETCDCTL_API", "3")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run etcdctl");
    assert!(status.success());
    let nc = nc.clone();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            asked.fetch_add(1, Ordering::Relaxed);
            let error = protos::Error {
                code: "PIT-404".into(),
                msg: "pitaya/remote: sys.pushbatch not found".into(),
                ..protos::Error::default()
            };
            let reply = protos::Response { data: Bytes::new(), error: Some(error) };
            if let Some(to) = msg.reply {
                let _ = nc.publish(to, reply.encode_to_vec().into()).await;
            }
        }
    })
}

/// Which path the pushes should take.
#[derive(Clone, Copy, PartialEq)]
enum Setup {
    /// Two pitaya-rs frontends: batched.
    Ours,
    /// And a Go-like one: Go's path.
    WithGoFrontend,
    /// Two pitaya-rs frontends, `pitaya.cluster.rpc.client.pushbatch=false` on the
    /// sender: Go's path.
    BatchingOff,
}

async fn pushes(grpc: bool, setup: Setup) {
    let go_frontend = setup == Setup::WithGoFrontend;
    let per_uid_path = setup != Setup::Ours;
    within(async {
        let prefix = sd_prefix();
        let nc = async_nats::connect(pitaya_test_services::shared_nats_url()).await.unwrap();
        // Go's path publishes one message per uid on `pitaya/connector/user/<uid>/push`,
        // a single NATS token: no wildcard matches it, so everything is watched and this
        // test's uids (which carry its tag) picked out.
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let per_uid = nc.subscribe(">").await.unwrap();
        nc.flush().await.unwrap();
        let off = [("pitaya.cluster.rpc.client.pushbatch", "false")];
        let extra: &[(&str, &str)] = if setup == Setup::BatchingOff { &off } else { &[] };
        let back = inproc::builder_with(grpc, "game", false, &prefix, extra)
            .component(Component::new("push").handler("all", push_all));
        let back = inproc::start(back).await;
        let fronts = [
            inproc::start(
                inproc::builder(grpc, "connector", true, &prefix)
                    .component(Component::new("auth").handler("bind", bind)),
            )
            .await,
            inproc::start(
                inproc::builder(grpc, "connector", true, &prefix)
                    .component(Component::new("auth").handler("bind", bind)),
            )
            .await,
        ];
        // Its own connection: the watching one above takes everything.
        let fake_nc = async_nats::connect(pitaya_test_services::shared_nats_url()).await.unwrap();
        let asked = Arc::new(AtomicUsize::new(0));
        let fake = if go_frontend {
            Some(go_like_frontend(&prefix, &fake_nc, asked.clone()).await)
        } else {
            None
        };
        let want = if go_frontend { 3 } else { 2 };

        for front in &fronts {
            inproc::sees(front, "game").await;
        }
        let seen = crate::support::eventually(Duration::from_secs(10), || {
            back.handle().discovery().is_some_and(|d| d.servers_by_type("connector").len() == want)
        })
        .await;
        assert!(seen, "the backend does not see the {want} frontends");

        let mut clients = Vec::new();
        let mut uids = Vec::new();
        for (i, front) in fronts.iter().enumerate() {
            for j in 0..PER_FRONT {
                let uid = format!("{tag}-{i}-{j}");
                let (c, p) = crate::support::connect(&inproc::addr(front)).await;
                c.request("connector.auth.bind", uid.clone()).await.unwrap();
                uids.push(uid);
                clients.push((c, p));
            }
        }
        uids.push(format!("{tag}-offline"));
        let body = serde_json::to_vec(&uids).unwrap();
        let failed = clients[0].0.request("game.push.all", body).await.unwrap();
        // As Go's NATS path, a user nobody holds is not a failure.
        assert_eq!(&failed[..], b"[]");
        for (c, p) in &mut clients {
            let push = wait("the push", p.recv()).await.unwrap();
            assert_eq!((push.route.as_str(), &push.data[..]), ("onPush", &b"hello"[..]));
            // Exactly once: nothing more arrives.
            let again = tokio::time::timeout(Duration::from_millis(300), p.recv()).await;
            assert!(again.is_err(), "a second push arrived");
            c.close().await;
        }
        let published = count(per_uid, tag, Duration::from_millis(300)).await;
        if per_uid_path && !grpc {
            assert_eq!(published, uids.len(), "Go's path publishes one message per uid");
        }
        if go_frontend {
            assert!(asked.load(Ordering::Relaxed) >= 1, "the Go-like frontend was never asked");
        } else if !grpc && !per_uid_path {
            assert_eq!(published, 0, "per-uid messages were published");
        }
        if let Some(fake) = fake {
            fake.abort();
        }
        back.shutdown().await;
        for front in fronts {
            front.shutdown().await;
        }
    })
    .await;
}

/// How many per-uid pushes to this test's users `sub` received, waiting `quiet` after
/// the last message.
async fn count(mut sub: async_nats::Subscriber, tag: &str, quiet: Duration) -> usize {
    let mut n = 0;
    while let Ok(Some(msg)) = tokio::time::timeout(quiet, sub.next()).await {
        let subject = msg.subject.as_str();
        if subject.starts_with("pitaya/connector/user/")
            && subject.ends_with("/push")
            && subject.contains(tag)
        {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn one_batch_per_frontend_over_nats() {
    pushes(false, Setup::Ours).await;
}

#[tokio::test]
async fn one_batch_per_frontend_over_grpc() {
    pushes(true, Setup::Ours).await;
}

#[tokio::test]
async fn a_go_frontend_of_the_type_means_gos_path_for_every_uid() {
    pushes(false, Setup::WithGoFrontend).await;
}

#[tokio::test]
async fn with_pushbatch_off_gos_path_for_every_uid() {
    pushes(false, Setup::BatchingOff).await;
}
