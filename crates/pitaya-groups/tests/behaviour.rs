//! `MemoryGroups` against the behaviour every `Groups` implementation shows (`suite`,
//! shared with the etcd implementation's tests in `pitaya-etcd`), plus memory-only TTL
//! checks on a paused clock.

mod suite;

use std::sync::Arc;
use std::time::Duration;

use pitaya_groups::{GroupError, Groups, MemoryGroups};

/// The shared behaviours, in real time: a 100 ms sweep tick against their 2 s TTLs.
mod memory {
    crate::suite::behaviour_tests!(
        crate::suite::Flavor::Memory,
        pitaya_groups::MemoryGroups::new(std::time::Duration::from_millis(100))
    );
}

/// The same behaviours through an `Arc<dyn Groups>`: the shared handle forwards every
/// operation unchanged.
mod shared_arc {
    crate::suite::behaviour_tests!(crate::suite::Flavor::Memory, {
        let groups: std::sync::Arc<dyn pitaya_groups::Groups> = std::sync::Arc::new(
            pitaya_groups::MemoryGroups::new(std::time::Duration::from_millis(100)),
        );
        groups
    });
}

#[tokio::test]
async fn the_member_snapshot_is_shared_until_the_members_change() {
    let groups: Arc<dyn Groups> = Arc::new(MemoryGroups::default());
    groups.create("room").await.unwrap();
    groups.add_member("room", "ana").await.unwrap();
    let first = groups.member_snapshot("room").await.unwrap();
    let again = groups.member_snapshot("room").await.unwrap();
    assert!(Arc::ptr_eq(&first, &again), "unchanged members: the same list");
    for change in ["add", "remove", "remove_all"] {
        match change {
            "add" => groups.add_member("room", "bob").await.unwrap(),
            "remove" => groups.remove_member("room", "ana").await.unwrap(),
            _ => groups.remove_all("room").await.unwrap(),
        }
        let next = groups.member_snapshot("room").await.unwrap();
        assert!(!Arc::ptr_eq(&first, &next), "after {change}: a new list");
    }
    assert!(groups.member_snapshot("room").await.unwrap().is_empty());
}

#[tokio::test]
async fn clones_share_groups_and_separate_services_do_not() {
    let a = MemoryGroups::default();
    let b = a.clone();
    let other = MemoryGroups::default();
    a.create("room").await.unwrap();
    b.add_member("room", "ana").await.unwrap();
    assert_eq!(a.members("room").await, Ok(vec!["ana".to_owned()]));
    assert_eq!(other.members("room").await, Err(GroupError::NotFound));

    let shared: Arc<dyn Groups> = Arc::new(a.clone());
    let holders = [shared.clone(), shared];
    holders[0].add_member("room", "bob").await.unwrap();
    assert_eq!(holders[1].count("room").await, Ok(2));
    assert_eq!(b.contains("room", "bob").await, Ok(true));
}

#[tokio::test(start_paused = true)]
async fn memory_ttl_expires_unless_renewed() {
    let g = MemoryGroups::new(Duration::from_secs(1));
    g.create_with_ttl("t", Duration::from_secs(10)).await.unwrap();
    g.add_member("t", "u").await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    g.renew_ttl("t").await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(g.count("t").await, Ok(1), "renewed 6 s ago, ttl 10 s");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(g.count("t").await, Err(GroupError::NotFound));
    // An expired name can be created again.
    g.create("t").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn sweep_frees_expired_groups_without_access() {
    let g = MemoryGroups::new(Duration::from_secs(1));
    g.create_with_ttl("t", Duration::from_secs(2)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(format!("{g:?}").contains("groups: 0"), "{g:?}");
}
