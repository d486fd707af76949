//! Behaviour every `Groups` implementation must show (spec §9). The etcd implementation
//! runs the same checks through `check_basic_behaviour`.

use std::time::Duration;

use pitaya_groups::{GroupError, Groups, MemoryGroups};

async fn check_basic_behaviour(g: &dyn Groups) {
    g.create("room").await.unwrap();
    assert_eq!(g.create("room").await, Err(GroupError::AlreadyExists));
    assert_eq!(g.add_member("nope", "a").await, Err(GroupError::NotFound));
    assert_eq!(g.add_member("room", "").await, Err(GroupError::EmptyUid));
    g.add_member("room", "b").await.unwrap();
    g.add_member("room", "a").await.unwrap();
    assert_eq!(g.add_member("room", "a").await, Err(GroupError::MemberAlreadyExists));
    let mut members = g.members("room").await.unwrap();
    members.sort();
    assert_eq!(members, ["a", "b"]);
    assert_eq!(g.contains("room", "a").await, Ok(true));
    assert_eq!(g.contains("room", "z").await, Ok(false));
    assert_eq!(g.count("room").await, Ok(2));
    assert_eq!(g.remove_member("room", "z").await, Err(GroupError::MemberNotFound));
    g.remove_member("room", "a").await.unwrap();
    assert_eq!(g.count("room").await, Ok(1));
    g.remove_all("room").await.unwrap();
    assert_eq!(g.count("room").await, Ok(0));
    assert_eq!(g.renew_ttl("room").await, Err(GroupError::TtlNotFound));
    g.delete("room").await.unwrap();
    assert_eq!(g.delete("room").await, Err(GroupError::NotFound));
    assert_eq!(g.members("room").await, Err(GroupError::NotFound));
    assert_eq!(GroupError::MemberNotFound.to_string(), "member not found in the group");
}

#[tokio::test]
async fn memory_basic_behaviour() {
    check_basic_behaviour(&MemoryGroups::default()).await;
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
