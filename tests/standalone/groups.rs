//! Groups of several apps in one process: separate by default, shared when the apps
//! are built with one group service (`Builder::groups`).

use std::sync::Arc;

use pitaya::Builder;
use pitaya::groups::{GroupError, Groups, MemoryGroups};

use crate::support::{Server, config, echo_builder, test_component, within};

/// An echo app with `test.bind`, using the shared groups when given.
fn app(groups: Option<Arc<dyn Groups>>) -> Builder {
    let builder = echo_builder(config(&[])).component(test_component());
    match groups {
        Some(groups) => builder.groups(groups),
        None => builder,
    }
}

/// A client of `server` bound to `uid` that joined the echo app's group `room`.
async fn join_as(server: &Server, uid: &str) -> pitaya::client::Client {
    let (client, _pushes) = server.client().await;
    assert_eq!(client.request("test.bind", uid.to_owned()).await.expect("test.bind"), "bound");
    assert_eq!(client.request("room.join", "").await.expect("room.join"), r#"{"code":200}"#);
    client
}

async fn members(server: &Server) -> Result<Vec<String>, GroupError> {
    let mut members = server.handle().groups().members("room").await?;
    members.sort();
    Ok(members)
}

#[tokio::test]
async fn apps_built_with_one_group_service_see_each_others_members() {
    within(async {
        let memory = MemoryGroups::default();
        let shared: Arc<dyn Groups> = Arc::new(memory.clone());
        let a = Server::start(app(Some(shared.clone()))).await;
        let b = Server::start(app(Some(shared))).await;
        let ana = join_as(&a, "ana").await;
        let bob = join_as(&b, "bob").await;

        let both = vec!["ana".to_owned(), "bob".to_owned()];
        assert_eq!(members(&a).await, Ok(both.clone()), "a sees b's member");
        assert_eq!(members(&b).await, Ok(both), "b sees a's member");
        // The service the application kept is the one the apps use.
        assert_eq!(memory.count("room").await, Ok(2));
        b.handle().groups().remove_member("room", "ana").await.expect("b removes a's member");
        assert_eq!(members(&a).await, Ok(vec!["bob".to_owned()]));

        ana.close().await;
        bob.close().await;
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_cloned_memory_service_is_shared_too() {
    within(async {
        let memory = MemoryGroups::default();
        let a = Server::start(app(None).groups(memory.clone())).await;
        let b = Server::start(app(None).groups(memory)).await;
        let ana = join_as(&a, "ana").await;
        assert_eq!(members(&b).await, Ok(vec!["ana".to_owned()]));
        ana.close().await;
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn by_default_each_app_has_groups_of_its_own() {
    within(async {
        let a = Server::start(app(None)).await;
        let b = Server::start(app(None)).await;
        let ana = join_as(&a, "ana").await;
        assert_eq!(members(&a).await, Ok(vec!["ana".to_owned()]));
        assert_eq!(members(&b).await, Err(GroupError::NotFound), "unlike Go's process-wide map");
        let bob = join_as(&b, "bob").await;
        assert_eq!(members(&b).await, Ok(vec!["bob".to_owned()]));
        assert_eq!(members(&a).await, Ok(vec!["ana".to_owned()]));
        ana.close().await;
        bob.close().await;
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}
