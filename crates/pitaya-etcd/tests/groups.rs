//! `EtcdGroups` against a real etcd: the behaviour every `Groups` implementation shows
//! (the suite of `pitaya-groups`, run here against both `MemoryGroups` and `EtcdGroups`),
//! then what only etcd has: Go's exact keys, values and leases, groups written by Go,
//! and several servers sharing one set of groups.

mod common;
#[path = "../../pitaya-groups/tests/suite/mod.rs"]
mod suite;

use std::time::Duration;

use common::{client, eventually_async, get, keys, logs};
use etcd_client::PutOptions;
use pitaya_config::PitayaConfig;
use pitaya_etcd::{EtcdGroups, EtcdGroupsConfig};
use pitaya_groups::{GroupError, Groups};

/// The test-services API blocks (it waits for etcd to be healthy).
fn shared_endpoint() -> String {
    tokio::task::block_in_place(pitaya_test_services::shared_etcd_endpoint)
}

/// Go's defaults, pointed at the shared etcd, under a fresh prefix.
fn config() -> EtcdGroupsConfig {
    logs();
    let mut c = PitayaConfig::default().groups.etcd;
    c.endpoints = vec![shared_endpoint()];
    c.prefix = format!("test-{}/", uuid::Uuid::new_v4());
    c.dial_timeout = Duration::from_secs(2);
    c
}

async fn etcd_groups() -> EtcdGroups {
    EtcdGroups::connect(&config()).await.expect("connect to etcd")
}

mod memory {
    crate::suite::behaviour_tests!(
        crate::suite::Flavor::Memory,
        pitaya_groups::MemoryGroups::new(std::time::Duration::from_millis(100))
    );
}

mod etcd {
    crate::suite::behaviour_tests!(crate::suite::Flavor::Etcd, crate::etcd_groups().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_values_and_leases_match_go() {
    let cfg = config();
    let g = EtcdGroups::connect(&cfg).await.unwrap();
    let mut etcd = client(&cfg.endpoints[0]).await;
    let p = &cfg.prefix;

    g.create("room1").await.unwrap();
    g.add_member("room1", "alice").await.unwrap();
    assert_eq!(get(&mut etcd, &format!("{p}groups/room1")).await, Some((String::new(), 0)));
    let alice = get(&mut etcd, &format!("{p}groups/room1/uids/alice")).await;
    assert_eq!(alice, Some((String::new(), 0)), "no lease without TTL");

    g.create_with_ttl("timed", Duration::from_secs(30)).await.unwrap();
    g.add_member("timed", "carol").await.unwrap();
    let (value, lease) = get(&mut etcd, &format!("{p}groups/timed")).await.unwrap();
    assert_eq!(value, "");
    assert_ne!(lease, 0);
    let carol = get(&mut etcd, &format!("{p}groups/timed/uids/carol")).await;
    assert_eq!(carol, Some((String::new(), lease)), "members carry the group's lease");
    assert_eq!(etcd.lease_time_to_live(lease, None).await.unwrap().granted_ttl(), 30);

    let mut all = keys(&mut etcd, p).await;
    all.sort();
    let want =
        ["groups/room1", "groups/room1/uids/alice", "groups/timed", "groups/timed/uids/carol"];
    assert_eq!(all, want.map(|k| format!("{p}{k}")));

    // Delete removes both shapes at once; a lease the group had is left to expire.
    g.delete("timed").await.unwrap();
    g.delete("room1").await.unwrap();
    assert_eq!(keys(&mut etcd, p).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_restarts_the_lease_countdown() {
    let cfg = config();
    let g = EtcdGroups::connect(&cfg).await.unwrap();
    let mut etcd = client(&cfg.endpoints[0]).await;
    g.create_with_ttl("timed", Duration::from_secs(5)).await.unwrap();
    let (_, lease) = get(&mut etcd, &format!("{}groups/timed", cfg.prefix)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(etcd.lease_time_to_live(lease, None).await.unwrap().ttl() <= 3);
    g.renew_ttl("timed").await.unwrap();
    let ttl = etcd.lease_time_to_live(lease, None).await.unwrap();
    assert!(ttl.ttl() >= 4, "remaining {} s after renewal", ttl.ttl());
    assert_eq!(ttl.granted_ttl(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_second_and_fractional_ttls_are_whole_seconds() {
    let cfg = config();
    let g = EtcdGroups::connect(&cfg).await.unwrap();
    let mut etcd = client(&cfg.endpoints[0]).await;
    g.create_with_ttl("fraction", Duration::from_millis(30_900)).await.unwrap();
    let (_, lease) = get(&mut etcd, &format!("{}groups/fraction", cfg.prefix)).await.unwrap();
    // Go: int64(ttl.Seconds()) truncates.
    assert_eq!(etcd.lease_time_to_live(lease, None).await.unwrap().granted_ttl(), 30);
    g.create_with_ttl("tiny", Duration::from_millis(10)).await.unwrap();
    assert_eq!(g.count("tiny").await, Ok(0), "created with etcd's minimum TTL instead of 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_changes_groups_written_by_go() {
    let cfg = config();
    let g = EtcdGroups::connect(&cfg).await.unwrap();
    let mut etcd = client(&cfg.endpoints[0]).await;
    let p = &cfg.prefix;
    // What Go's etcd group service writes (spec Appendix A.1).
    etcd.put(format!("{p}groups/room1"), "", None).await.unwrap();
    etcd.put(format!("{p}groups/room1/uids/alice"), "", None).await.unwrap();
    let lease = etcd.lease_grant(30, None).await.unwrap().id();
    let leased = Some(PutOptions::new().with_lease(lease));
    etcd.put(format!("{p}groups/timed"), "", leased.clone()).await.unwrap();
    etcd.put(format!("{p}groups/timed/uids/carol"), "", leased).await.unwrap();

    assert_eq!(g.members("room1").await, Ok(vec!["alice".to_owned()]));
    assert_eq!(g.contains("timed", "carol").await, Ok(true));
    assert_eq!(g.count("timed").await, Ok(1));
    assert_eq!(g.create("room1").await, Err(GroupError::AlreadyExists));
    assert_eq!(g.renew_ttl("room1").await, Err(GroupError::EtcdLeaseNotFound));
    g.renew_ttl("timed").await.unwrap();
    g.add_member("timed", "dave").await.unwrap();
    let dave = get(&mut etcd, &format!("{p}groups/timed/uids/dave")).await;
    assert_eq!(dave, Some((String::new(), lease)), "a new member joins Go's lease");

    // Go's service accepts an empty uid and lists it; we list what is there.
    etcd.put(format!("{p}groups/room1/uids/"), "", None).await.unwrap();
    let mut members = g.members("room1").await.unwrap();
    members.sort();
    assert_eq!(members, ["", "alice"]);
    assert_eq!(g.count("room1").await, Ok(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_on_one_prefix_share_groups() {
    let cfg = config();
    let (a, b) =
        (EtcdGroups::connect(&cfg).await.unwrap(), EtcdGroups::connect(&cfg).await.unwrap());
    a.create("room").await.unwrap();
    assert_eq!(b.create("room").await, Err(GroupError::AlreadyExists));
    b.add_member("room", "u1").await.unwrap();
    assert_eq!(a.add_member("room", "u1").await, Err(GroupError::MemberAlreadyExists));
    a.add_member("room", "u2").await.unwrap();
    let mut members = b.members("room").await.unwrap();
    members.sort();
    assert_eq!(members, ["u1", "u2"]);

    // Racing adds of one uid from both servers: exactly one wins.
    let (ra, rb) = tokio::join!(a.add_member("room", "u3"), b.add_member("room", "u3"));
    assert!(
        matches!(
            (&ra, &rb),
            (Ok(()), Err(GroupError::MemberAlreadyExists))
                | (Err(GroupError::MemberAlreadyExists), Ok(()))
        ),
        "{ra:?} {rb:?}"
    );

    // A TTL group renewed by one server is seen alive by the other.
    b.create_with_ttl("timed", Duration::from_secs(2)).await.unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        a.renew_ttl("timed").await.unwrap();
    }
    assert_eq!(b.count("timed").await, Ok(0));
    assert_eq!(b.members("timed").await, Ok(vec![]));

    a.delete("room").await.unwrap();
    assert_eq!(b.members("room").await, Err(GroupError::NotFound));
    assert_eq!(b.count("room").await, Ok(0));

    // Another prefix is another set of groups.
    let other = etcd_groups().await;
    assert_eq!(other.members("timed").await, Err(GroupError::NotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_deleted_and_created_again_does_not_take_members_on_the_old_lease() {
    let cfg = config();
    let g = EtcdGroups::connect(&cfg).await.unwrap();
    let mut etcd = client(&cfg.endpoints[0]).await;
    // Recreated behind the group's back between an add's read and its transaction is a
    // race; here the recreation happens first, which the same guard covers.
    g.create_with_ttl("room", Duration::from_secs(30)).await.unwrap();
    g.delete("room").await.unwrap();
    g.create("room").await.unwrap();
    g.add_member("room", "u").await.unwrap();
    let member = get(&mut etcd, &format!("{}groups/room/uids/u", cfg.prefix)).await;
    assert_eq!(member, Some((String::new(), 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_fails_fast_without_etcd() {
    let mut cfg = PitayaConfig::default().groups.etcd;
    cfg.endpoints = vec![];
    let err = EtcdGroups::connect(&cfg).await.unwrap_err();
    assert!(matches!(&err, GroupError::Storage(m) if m.contains("no etcd endpoint")), "{err}");

    cfg.endpoints = vec![format!("127.0.0.1:{}", pitaya_test_services::free_port())];
    cfg.dial_timeout = Duration::from_millis(500);
    let started = tokio::time::Instant::now();
    let err = EtcdGroups::connect(&cfg).await.unwrap_err();
    assert!(
        matches!(&err, GroupError::Storage(m) if m.starts_with("etcd groups: connect")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_fail_within_the_transaction_timeout_when_etcd_is_gone() {
    let mut server = tokio::task::block_in_place(pitaya_test_services::Etcd::start);
    let mut cfg = config();
    cfg.endpoints = vec![server.endpoint()];
    cfg.transaction_timeout = Duration::from_millis(500);
    let g = EtcdGroups::connect(&cfg).await.unwrap();
    g.create("room").await.unwrap();
    tokio::task::block_in_place(|| server.stop());
    let started = tokio::time::Instant::now();
    let err = g.add_member("room", "u").await.unwrap_err();
    assert!(matches!(err, GroupError::Storage(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());

    tokio::task::block_in_place(|| server.restart());
    let endpoint = server.endpoint();
    eventually_async("groups to work again", Duration::from_secs(10), || {
        let g = g.clone();
        async move { g.add_member("room", "u").await.is_ok() }
    })
    .await;
    let mut etcd = client(&endpoint).await;
    assert!(get(&mut etcd, &format!("{}groups/room/uids/u", cfg.prefix)).await.is_some());
}
