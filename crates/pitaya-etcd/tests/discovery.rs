//! The discovery against a real etcd (shared by the tests; each uses its own prefix):
//! registration as Go writes it, peers, records written by others, blacklist, sync.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use pitaya_cluster::{DieSignal, ServiceDiscovery};
use pitaya_etcd::{EtcdServiceDiscovery, SdError};

const SOON: Duration = Duration::from_secs(3);

fn endpoint() -> String {
    // The test-services API blocks while it starts etcd.
    tokio::task::block_in_place(pitaya_test_services::shared_etcd_endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_the_go_key_and_value_on_a_60s_lease() {
    let ep = endpoint();
    let cfg = config(&ep);
    let sd = discovery(&cfg, "game");
    let me = sd.this_server().clone();
    let key = format!("{}servers/game/{}", cfg.prefix, me.id);
    assert_eq!(sd.key(), key);
    assert!(sd.servers().is_empty(), "nothing is known before start");

    sd.start().await.unwrap();
    let mut etcd = client(&ep).await;
    let (value, lease) = get(&mut etcd, &key).await.expect("our key is in etcd");
    assert_eq!(value, me.to_json());
    assert!(value.starts_with(&format!(r#"{{"id":"{}","type":"game","metadata":{{"grpcHost":"127.0.0.1"}},"frontend":false,"hostname":""#, me.id)));
    let ttl = etcd.lease_time_to_live(lease, None).await.unwrap();
    assert_eq!(ttl.granted_ttl(), 60);
    assert!(ttl.ttl() > 50, "the lease is kept alive: {}", ttl.ttl());
    assert_eq!(keys(&mut etcd, &cfg.prefix).await, sorted(&[&key]));
    // Our own server is in our view.
    assert_eq!(ids(&sd), sorted(&[&me.id]));
    assert_eq!(sd.server(&me.id).unwrap(), me);
    assert_eq!(sd.servers_by_type("game"), vec![me.clone()]);

    sd.stop().await;
    assert_eq!(get(&mut etcd, &key).await, None, "stop revokes the lease");
    assert!(etcd.lease_time_to_live(lease, None).await.unwrap().ttl() <= 0);
    assert!(sd.servers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_ttl_comes_from_heartbeat_ttl() {
    let ep = endpoint();
    let mut cfg = config(&ep);
    cfg.heartbeat.ttl = Duration::from_secs(30);
    let sd = discovery(&cfg, "game");
    sd.start().await.unwrap();
    let mut etcd = client(&ep).await;
    let (_, lease) = get(&mut etcd, sd.key()).await.unwrap();
    assert_eq!(etcd.lease_time_to_live(lease, None).await.unwrap().granted_ttl(), 30);
    sd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_see_each_other_and_a_stop_at_once() {
    let ep = endpoint();
    let cfg = config(&ep);
    let a = discovery(&cfg, "connector");
    let b = discovery(&cfg, "game");
    let (ida, idb) = (a.this_server().id.clone(), b.this_server().id.clone());
    let before = Arc::new(Recorder::default());
    a.add_listener(before.clone());

    a.start().await.unwrap();
    assert_eq!(before.events(), [format!("+{ida}")], "a listener hears of our own server");
    b.start().await.unwrap();
    // b's first sync saw a; a's watch sees b.
    assert_eq!(ids(&b), sorted(&[&ida, &idb]));
    eventually("a to see b", SOON, || ids(&a) == sorted(&[&ida, &idb])).await;
    assert_eq!(b.server(&ida).unwrap().as_ref(), a.this_server().as_ref());
    assert!(!a.server(&idb).unwrap().frontend);
    assert!(b.server(&ida).unwrap().frontend, "a connector is a frontend");
    assert_eq!(a.servers_by_type("game").len(), 1);
    assert_eq!(a.servers_by_type("connector").len(), 1);
    assert!(a.servers_by_type("nope").is_empty());

    let after = Arc::new(Recorder::default());
    a.add_listener(after.clone());
    let mut replay = after.events();
    replay.sort();
    assert_eq!(
        replay,
        sorted(&[&format!("+{ida}"), &format!("+{idb}")]),
        "replay of known servers"
    );

    // The default TTL (60 s) and sync interval (120 s) are far off: only the revoke's
    // DELETE event can tell a so soon.
    b.stop().await;
    eventually("a to see b leave", Duration::from_secs(1), || ids(&a) == [ida.clone()]).await;
    assert_eq!(before.events(), [format!("+{ida}"), format!("+{idb}"), format!("-{idb}")]);
    assert_eq!(after.events().last().unwrap(), &format!("-{idb}"));

    // b's tasks are gone: nothing puts its key back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut etcd = client(&ep).await;
    assert_eq!(get(&mut etcd, b.key()).await, None);
    b.stop().await; // idempotent
    let again = b.start().await.unwrap_err();
    assert!(matches!(again.source().and_then(|s| s.downcast_ref()), Some(SdError::Stopped)));
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_written_by_others_are_read_like_go() {
    let ep = endpoint();
    let cfg = config(&ep);
    let mut etcd = client(&ep).await;
    let key = |t: &str, id: &str| format!("{}servers/{t}/{id}", cfg.prefix);
    // Already there at start: found by the first sync.
    etcd.put(key("fake", "early"), r#"{"id":"early","type":"fake"}"#, None).await.unwrap();
    etcd.put(key("fake", "bad-early"), "not json", None).await.unwrap();
    let sd = discovery(&cfg, "game");
    sd.start().await.unwrap();
    let me = sd.this_server().id.clone();
    assert_eq!(ids(&sd), sorted(&[&me, "early"]));
    let early = sd.server("early").unwrap();
    assert_eq!(
        (early.server_type.as_str(), early.frontend, early.metadata.len()),
        ("fake", false, 0)
    );

    // Written while watching. Events arrive in order, so once the last one is seen the
    // ignored ones have been processed.
    etcd.put(key("bad", "y"), "{not json", None).await.unwrap();
    etcd.put(
        key("fake", "int-port"),
        r#"{"id":"int-port","type":"fake","metadata":{"grpcPort":3440}}"#,
        None,
    )
    .await
    .unwrap();
    etcd.put(format!("{}servers/fake/z/extra", cfg.prefix), r#"{"id":"z","type":"fake"}"#, None)
        .await
        .unwrap();
    etcd.put(key("fake", "x"), r#"{"id":"x","type":"fake","metadata":null}"#, None).await.unwrap();
    eventually("x to be discovered", SOON, || sd.server("x").is_some()).await;
    assert_eq!(ids(&sd), sorted(&[&me, "early", "x"]));
    assert_eq!(sd.servers_by_type("fake").len(), 2);

    // A DELETE removes by the key's last segment.
    etcd.delete(key("fake", "x"), None).await.unwrap();
    eventually("x to be removed", SOON, || sd.server("x").is_none()).await;
    sd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_for_a_known_id_is_ignored() {
    let ep = endpoint();
    let cfg = config(&ep);
    let mut etcd = client(&ep).await;
    let key = format!("{}servers/fake/x", cfg.prefix);
    let sd = discovery(&cfg, "game");
    sd.start().await.unwrap();
    etcd.put(key.as_str(), r#"{"id":"x","type":"fake","metadata":{"grpcPort":"1"}}"#, None)
        .await
        .unwrap();
    eventually("x to be discovered", SOON, || sd.server("x").is_some()).await;
    etcd.put(key.as_str(), r#"{"id":"x","type":"fake","metadata":{"grpcPort":"2"}}"#, None)
        .await
        .unwrap();
    etcd.put(format!("{}servers/fake/sentinel", cfg.prefix), r#"{"id":"sentinel"}"#, None)
        .await
        .unwrap();
    eventually("the sentinel", SOON, || sd.server("sentinel").is_some()).await;
    assert_eq!(
        sd.server("x").unwrap().metadata["grpcPort"],
        "1",
        "spec §5.4: known ids keep their record"
    );
    sd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blacklisted_types_are_ignored_except_our_own_entry() {
    let ep = endpoint();
    let mut cfg = config(&ep);
    cfg.server_types_blacklist = vec!["fake".into(), "game".into()];
    let mut etcd = client(&ep).await;
    let key = |t: &str, id: &str| format!("{}servers/{t}/{id}", cfg.prefix);
    etcd.put(key("fake", "early"), r#"{"id":"early","type":"fake"}"#, None).await.unwrap();
    let sd = discovery(&cfg, "game");
    sd.start().await.unwrap();
    let me = sd.this_server().id.clone();
    assert_eq!(ids(&sd), sorted(&[&me]), "our own type is blacklisted, our entry is not");

    etcd.put(key("fake", "f"), r#"{"id":"f","type":"fake"}"#, None).await.unwrap();
    etcd.put(key("game", "g"), r#"{"id":"g","type":"game"}"#, None).await.unwrap();
    etcd.put(key("connector", "c"), r#"{"id":"c","type":"connector"}"#, None).await.unwrap();
    eventually("c to be discovered", SOON, || sd.server("c").is_some()).await;
    assert_eq!(ids(&sd), sorted(&[&me, "c"]));
    sd.stop().await;
}

/// Spec §5.1: under a key whose last segment is not the record's id, a DELETE cannot
/// remove the server (it removes by the key's segment), so only the periodic sync can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_sync_removes_a_server_the_watch_missed() {
    let ep = endpoint();
    let mut cfg = config(&ep);
    cfg.sync_servers.interval = Duration::from_millis(500);
    let fast = discovery(&cfg, "game");
    cfg.sync_servers.interval = Duration::from_secs(120);
    let slow = discovery(&cfg, "game");
    fast.start().await.unwrap();
    slow.start().await.unwrap();

    let mut etcd = client(&ep).await;
    let key = format!("{}servers/fake/x", cfg.prefix);
    etcd.put(key.as_str(), r#"{"id":"y","type":"fake"}"#, None).await.unwrap();
    eventually("slow to see y", SOON, || slow.server("y").is_some()).await;
    etcd.delete(key.as_str(), None).await.unwrap();

    eventually("fast's sync to remove y", SOON, || fast.server("y").is_none()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(slow.server("y").is_some(), "without a sync the ghost stays, as in Go");

    // A server that exists is (still) there after syncs.
    etcd.put(format!("{}servers/fake/z", cfg.prefix), r#"{"id":"z","type":"fake"}"#, None)
        .await
        .unwrap();
    eventually("z to be discovered", SOON, || fast.server("z").is_some()).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (me_fast, me_slow) = (fast.this_server().id.clone(), slow.this_server().id.clone());
    assert_eq!(ids(&fast), sorted(&[&me_fast, &me_slow, "z"]));
    fast.stop().await;
    slow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_fails_in_bounded_time_without_etcd() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cfg = config(&format!("127.0.0.1:{port}"));
    cfg.dial_timeout = Duration::from_millis(300);
    let die = DieSignal::new();
    let sd = EtcdServiceDiscovery::new(cfg, server("game"), die.clone());
    let started = tokio::time::Instant::now();
    let err = sd.start().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(err.code(), "PIT-000");
    assert!(sd.servers().is_empty());
    assert_eq!(die.reason(), None, "a failed start is reported by start(), not by dying");
    sd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_type_with_a_slash_is_refused() {
    let cfg = config(&endpoint());
    let sd = discovery(&cfg, "a/b");
    let err = sd.start().await.unwrap_err();
    assert!(matches!(err.source().and_then(|s| s.downcast_ref()), Some(SdError::Config(_))));
}

/// On a private etcd, since enabling auth would lock the other tests out of the shared one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_pass_authenticate() {
    let mut etcd_server = tokio::task::block_in_place(pitaya_test_services::Etcd::start);
    let ep = etcd_server.endpoint();
    let mut admin = client(&ep).await;
    admin.role_add("root").await.unwrap();
    admin.user_add("root", "secret", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.auth_enable().await.unwrap();

    let mut cfg = config(&ep);
    cfg.dial_timeout = Duration::from_millis(500);
    cfg.user = "root".into();
    cfg.pass = "wrong".into();
    assert!(discovery(&cfg, "game").start().await.is_err());
    cfg.pass = String::new();
    assert!(
        discovery(&cfg, "game").start().await.is_err(),
        "Go sends no credentials without a password"
    );

    cfg.pass = "secret".into();
    let sd = discovery(&cfg, "game");
    sd.start().await.unwrap();
    let options = etcd_client::ConnectOptions::new().with_user("root", "secret");
    let mut root =
        etcd_client::Client::connect([ep.as_str()], Some(options.clone())).await.unwrap();
    assert_eq!(get(&mut root, sd.key()).await.unwrap().0, sd.this_server().to_json());

    // A restart invalidates the auth token; the client must log in again.
    tokio::task::block_in_place(|| etcd_server.restart());
    let mut root = etcd_client::Client::connect([ep.as_str()], Some(options)).await.unwrap();
    let (_, lease) = get(&mut root, sd.key()).await.unwrap();
    root.lease_revoke(lease).await.unwrap();
    let key = sd.key().to_owned();
    eventually_async("our key to be back after a restart", SOON, || {
        let (mut root, key) = (root.clone(), key.clone());
        async move { get(&mut root, &key).await.is_some_and(|(_, l)| l != lease) }
    })
    .await;
    sd.stop().await;
    assert_eq!(get(&mut root, sd.key()).await, None);
}
