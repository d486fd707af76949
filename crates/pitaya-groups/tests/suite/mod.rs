//! Behaviour every [`Groups`] implementation shows (spec §9), written once and run
//! against `MemoryGroups` (here and in `pitaya-etcd`) and `EtcdGroups` (in `pitaya-etcd`,
//! which includes this file with `#[path]`).
//!
//! Each behaviour takes fresh, empty groups and the [`Flavor`] saying which of Go's two
//! services it must match where they differ. TTL behaviours run in real time (etcd
//! expires leases on its own clock) with a 2 s TTL, the shortest lease etcd grants with
//! its default election timeout; build memory groups with a short sweep tick.

use std::time::Duration;

use futures_util::future::join_all;
use pitaya_groups::{GroupError, GroupResult, Groups};
use tokio::time::{Instant, sleep};

/// Which Go service an implementation follows where Go's memory and etcd services differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code, reason = "each test binary that includes the suite uses one flavor")]
pub(crate) enum Flavor {
    /// Go's `MemoryGroupService`.
    Memory,
    /// Go's `EtcdGroupService`.
    Etcd,
}

impl Flavor {
    /// `GroupCountMembers` of a missing group: etcd counts the member keys without
    /// checking the group.
    fn count_of_missing(self) -> GroupResult<usize> {
        match self {
            Flavor::Memory => Err(GroupError::NotFound),
            Flavor::Etcd => Ok(0),
        }
    }

    /// `GroupRemoveMember` on a missing group: etcd guards on the member key alone.
    fn remove_from_missing(self) -> GroupError {
        match self {
            Flavor::Memory => GroupError::NotFound,
            Flavor::Etcd => GroupError::MemberNotFound,
        }
    }
}

/// The TTL the TTL behaviours use.
const TTL: Duration = Duration::from_secs(2);
/// How long an expiry may take past the TTL (etcd checks leases every 500 ms, memory
/// sweeps every tick).
const EXPIRY_SLACK: Duration = Duration::from_secs(4);

/// Generates one `#[tokio::test]` per behaviour below. `$make` builds the groups; it is
/// expanded inside the async test, so it may `.await`.
macro_rules! behaviour_tests {
    ($flavor:expr, $make:expr) => {
        $crate::suite::behaviour_tests!(@each $flavor, $make;
            create_rejects_a_taken_name,
            add_member_checks_uid_group_and_duplicates,
            remove_member_checks_membership,
            remove_all_keeps_the_group,
            delete_removes_the_group_and_its_members,
            members_contains_and_count,
            groups_do_not_share_members,
            concurrent_adds_of_one_uid_admit_one,
            renew_ttl_errors,
            ttl_group_expires_with_its_members,
            renewing_keeps_a_ttl_group_alive,
        );
    };
    (@each $flavor:expr, $make:expr; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let groups = $make;
            $crate::suite::$name(&groups, $flavor).await;
        }
    )*};
}
pub(crate) use behaviour_tests;

async fn sorted_members(g: &dyn Groups, name: &str) -> GroupResult<Vec<String>> {
    let mut members = g.members(name).await?;
    members.sort();
    Ok(members)
}

/// Polls `name`'s members every 50 ms until the group is gone; panics after `within`.
/// The uids of [`Groups::member_snapshot`], sorted.
async fn snapshot_uids(g: &dyn Groups, name: &str) -> Vec<String> {
    let mut uids: Vec<String> =
        g.member_snapshot(name).await.unwrap().iter().map(|u| u.to_string()).collect();
    uids.sort();
    uids
}

async fn wait_until_gone(g: &dyn Groups, name: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while g.members(name).await != Err(GroupError::NotFound) {
        assert!(Instant::now() < deadline, "group {name:?} still there after {within:?}");
        sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn create_rejects_a_taken_name(g: &dyn Groups, _: Flavor) {
    g.create("room").await.unwrap();
    assert_eq!(g.create("room").await, Err(GroupError::AlreadyExists));
    assert_eq!(g.create_with_ttl("room", TTL).await, Err(GroupError::AlreadyExists));
    g.create_with_ttl("timed", Duration::from_secs(30)).await.unwrap();
    assert_eq!(g.create("timed").await, Err(GroupError::AlreadyExists));
    assert_eq!(g.create_with_ttl("timed", TTL).await, Err(GroupError::AlreadyExists));
    assert_eq!(sorted_members(g, "room").await, Ok(vec![]));
    assert_eq!(sorted_members(g, "timed").await, Ok(vec![]));
}

pub(crate) async fn add_member_checks_uid_group_and_duplicates(g: &dyn Groups, _: Flavor) {
    assert_eq!(g.add_member("nope", "a").await, Err(GroupError::NotFound));
    // Go checks the uid first, in the app-level wrapper.
    assert_eq!(g.add_member("nope", "").await, Err(GroupError::EmptyUid));
    g.create("room").await.unwrap();
    assert_eq!(g.add_member("room", "").await, Err(GroupError::EmptyUid));
    g.add_member("room", "b").await.unwrap();
    g.add_member("room", "a").await.unwrap();
    assert_eq!(g.add_member("room", "a").await, Err(GroupError::MemberAlreadyExists));
    assert_eq!(sorted_members(g, "room").await, Ok(vec!["a".to_owned(), "b".to_owned()]));
    assert_eq!(g.count("room").await, Ok(2));
}

pub(crate) async fn remove_member_checks_membership(g: &dyn Groups, f: Flavor) {
    assert_eq!(g.remove_member("nope", "a").await, Err(f.remove_from_missing()));
    g.create("room").await.unwrap();
    assert_eq!(g.remove_member("room", "a").await, Err(GroupError::MemberNotFound));
    g.add_member("room", "a").await.unwrap();
    g.add_member("room", "b").await.unwrap();
    g.remove_member("room", "a").await.unwrap();
    assert_eq!(g.remove_member("room", "a").await, Err(GroupError::MemberNotFound));
    assert_eq!(g.contains("room", "a").await, Ok(false));
    assert_eq!(sorted_members(g, "room").await, Ok(vec!["b".to_owned()]));
    // A removed member can come back.
    g.add_member("room", "a").await.unwrap();
    assert_eq!(g.count("room").await, Ok(2));
}

pub(crate) async fn remove_all_keeps_the_group(g: &dyn Groups, _: Flavor) {
    assert_eq!(g.remove_all("nope").await, Err(GroupError::NotFound));
    g.create("room").await.unwrap();
    g.remove_all("room").await.unwrap();
    g.add_member("room", "a").await.unwrap();
    g.add_member("room", "b").await.unwrap();
    g.remove_all("room").await.unwrap();
    assert_eq!(sorted_members(g, "room").await, Ok(vec![]));
    assert_eq!(g.count("room").await, Ok(0));
    assert_eq!(g.create("room").await, Err(GroupError::AlreadyExists), "the group stays");
    g.add_member("room", "a").await.unwrap();
    assert_eq!(g.count("room").await, Ok(1));
}

pub(crate) async fn delete_removes_the_group_and_its_members(g: &dyn Groups, f: Flavor) {
    assert_eq!(g.delete("nope").await, Err(GroupError::NotFound));
    g.create("room").await.unwrap();
    g.add_member("room", "a").await.unwrap();
    g.delete("room").await.unwrap();
    assert_eq!(g.delete("room").await, Err(GroupError::NotFound));
    assert_eq!(g.members("room").await, Err(GroupError::NotFound));
    assert_eq!(g.contains("room", "a").await, Err(GroupError::NotFound));
    assert_eq!(g.count("room").await, f.count_of_missing());
    assert_eq!(g.add_member("room", "a").await, Err(GroupError::NotFound));
    // The name is free again, and the new group starts empty.
    g.create("room").await.unwrap();
    assert_eq!(sorted_members(g, "room").await, Ok(vec![]));
    assert_eq!(g.count("room").await, Ok(0));
    // A group with TTL can be deleted too.
    g.create_with_ttl("timed", Duration::from_secs(30)).await.unwrap();
    g.add_member("timed", "a").await.unwrap();
    g.delete("timed").await.unwrap();
    assert_eq!(g.members("timed").await, Err(GroupError::NotFound));
}

pub(crate) async fn members_contains_and_count(g: &dyn Groups, f: Flavor) {
    assert_eq!(g.members("nope").await, Err(GroupError::NotFound));
    assert_eq!(g.contains("nope", "a").await, Err(GroupError::NotFound));
    assert_eq!(g.contains("nope", "").await, Err(GroupError::EmptyUid));
    assert_eq!(g.count("nope").await, f.count_of_missing());
    g.create("room").await.unwrap();
    assert_eq!(g.count("room").await, Ok(0));
    assert_eq!(g.contains("room", "").await, Err(GroupError::EmptyUid));
    for uid in ["carol", "alice", "bob"] {
        g.add_member("room", uid).await.unwrap();
    }
    assert_eq!(g.contains("room", "alice").await, Ok(true));
    assert_eq!(g.contains("room", "zed").await, Ok(false));
    assert_eq!(g.count("room").await, Ok(3));
    let members = sorted_members(g, "room").await.unwrap();
    assert_eq!(members, ["alice", "bob", "carol"]);
    // The broadcast snapshot lists the same uids, and follows changes.
    assert_eq!(snapshot_uids(g, "room").await, ["alice", "bob", "carol"]);
    g.remove_member("room", "bob").await.unwrap();
    assert_eq!(snapshot_uids(g, "room").await, ["alice", "carol"]);
    assert_eq!(g.member_snapshot("nope").await.map(|m| m.len()), Err(GroupError::NotFound));
}

pub(crate) async fn groups_do_not_share_members(g: &dyn Groups, _: Flavor) {
    for name in ["a", "ab", "a.b"] {
        g.create(name).await.unwrap();
        g.add_member(name, &format!("{name}-member")).await.unwrap();
    }
    assert_eq!(sorted_members(g, "a").await, Ok(vec!["a-member".to_owned()]));
    assert_eq!(g.count("ab").await, Ok(1));
    assert_eq!(g.contains("a", "ab-member").await, Ok(false));
    g.delete("a").await.unwrap();
    assert_eq!(sorted_members(g, "ab").await, Ok(vec!["ab-member".to_owned()]));
    assert_eq!(sorted_members(g, "a.b").await, Ok(vec!["a.b-member".to_owned()]));
}

pub(crate) async fn concurrent_adds_of_one_uid_admit_one(g: &dyn Groups, _: Flavor) {
    g.create("room").await.unwrap();
    let adds = (0..8).map(|_| g.add_member("room", "u"));
    let results = join_all(adds).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{results:?}");
    assert!(
        results.iter().all(|r| matches!(r, Ok(()) | Err(GroupError::MemberAlreadyExists))),
        "{results:?}"
    );
    assert_eq!(g.count("room").await, Ok(1));
}

pub(crate) async fn renew_ttl_errors(g: &dyn Groups, _: Flavor) {
    assert_eq!(g.renew_ttl("nope").await, Err(GroupError::NotFound));
    g.create("room").await.unwrap();
    // Each implementation answers with Go's text for it (memory / etcd).
    assert!(matches!(
        g.renew_ttl("room").await,
        Err(GroupError::TtlNotFound | GroupError::EtcdLeaseNotFound)
    ));
    g.create_with_ttl("timed", Duration::from_secs(30)).await.unwrap();
    g.renew_ttl("timed").await.unwrap();
}

pub(crate) async fn ttl_group_expires_with_its_members(g: &dyn Groups, f: Flavor) {
    g.create_with_ttl("timed", TTL).await.unwrap();
    g.add_member("timed", "carol").await.unwrap();
    g.create("forever").await.unwrap();
    assert_eq!(g.contains("timed", "carol").await, Ok(true));
    wait_until_gone(g, "timed", TTL + EXPIRY_SLACK).await;
    assert_eq!(g.count("timed").await, f.count_of_missing(), "the members went too");
    assert_eq!(g.contains("timed", "carol").await, Err(GroupError::NotFound));
    assert_eq!(g.members("forever").await, Ok(vec![]), "a group without TTL stays");
    // The name is free again.
    g.create("timed").await.unwrap();
    assert_eq!(g.count("timed").await, Ok(0));
}

pub(crate) async fn renewing_keeps_a_ttl_group_alive(g: &dyn Groups, _: Flavor) {
    g.create_with_ttl("timed", TTL).await.unwrap();
    g.add_member("timed", "carol").await.unwrap();
    // Renewed every half TTL for twice the TTL.
    for _ in 0..4 {
        sleep(TTL / 2).await;
        g.renew_ttl("timed").await.unwrap();
    }
    assert_eq!(g.contains("timed", "carol").await, Ok(true));
    wait_until_gone(g, "timed", TTL + EXPIRY_SLACK).await;
}
