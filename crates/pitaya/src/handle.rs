//! [`AppHandle`]: what handlers and the application use to reach sessions and groups.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;
use pitaya_core::Error;
use pitaya_groups::Groups;
use pitaya_handler::{FromRequestParts, Request};
use pitaya_serialize::Serializer;
use pitaya_session::SessionPool;

/// A cheap, cloneable handle on a server: its sessions, groups and serializer. Handlers
/// take it as an extractor.
#[derive(Clone)]
pub struct AppHandle(pub(crate) Arc<HandleInner>);

pub(crate) struct HandleInner {
    pub(crate) server_type: String,
    pub(crate) pool: SessionPool,
    pub(crate) groups: Arc<dyn Groups>,
    pub(crate) serializer: Arc<dyn Serializer>,
}

impl AppHandle {
    /// This server's type.
    pub fn server_type(&self) -> &str {
        &self.0.server_type
    }

    /// The sessions of this process.
    pub fn sessions(&self) -> &SessionPool {
        &self.0.pool
    }

    /// The groups service.
    pub fn groups(&self) -> &dyn Groups {
        self.0.groups.as_ref()
    }

    /// The client serializer.
    pub fn serializer(&self) -> &Arc<dyn Serializer> {
        &self.0.serializer
    }

    /// Encodes `value` with the client serializer, for pushes.
    ///
    /// # Errors
    /// `PIT-000` when the value cannot be encoded.
    pub fn encode<T: serde::Serialize + prost::Message>(&self, value: &T) -> Result<Bytes, Error> {
        pitaya_handler::extract::encode_with(self.0.serializer.as_ref(), value).map(Bytes::from)
    }

    /// Pushes `data` on `route` to the sessions bound to `uids` in this process, all at
    /// once so that one slow client does not delay the others. Returns the uids that
    /// could not be reached (Go's `SendPushToUsers`).
    pub async fn push_to_uids<'a>(
        &self,
        uids: impl IntoIterator<Item = &'a str>,
        route: &str,
        data: Bytes,
    ) -> Vec<String> {
        let pushes = uids.into_iter().map(|uid| {
            let session = self.0.pool.by_uid(uid);
            let data = data.clone();
            async move {
                match session {
                    Some(s) => s.push(route, data).await.err().map(|_| uid.to_owned()),
                    None => Some(uid.to_owned()),
                }
            }
        });
        join_all(pushes).await.into_iter().flatten().collect()
    }

    /// Pushes `data` on `route` to every member of `group` (Go's `GroupBroadcast`).
    /// Returns the members that could not be reached.
    ///
    /// # Errors
    /// The group's error, e.g. `group not found`.
    pub async fn broadcast(
        &self,
        group: &str,
        route: &str,
        data: Bytes,
    ) -> Result<Vec<String>, Error> {
        let members = self.0.groups.members(group).await?;
        Ok(self.push_to_uids(members.iter().map(String::as_str), route, data).await)
    }

    /// Kicks the session bound to `uid` in this process.
    ///
    /// # Errors
    /// `PIT-000` `session not found` when no session is bound to `uid`.
    pub async fn kick_uid(&self, uid: &str) -> Result<(), Error> {
        let session = self
            .0
            .pool
            .by_uid(uid)
            .ok_or_else(|| Error::unknown(pitaya_session::messages::NOT_FOUND))?;
        session.kick().await
    }
}

impl FromRequestParts for AppHandle {
    fn from_request_parts(req: &Request) -> Result<Self, Error> {
        req.state
            .get::<AppHandle>()
            .ok_or_else(|| Error::internal("no application handle in the request state"))
    }
}

impl std::fmt::Debug for AppHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppHandle")
            .field("server_type", &self.0.server_type)
            .field("sessions", &self.0.pool.count())
            .finish()
    }
}
