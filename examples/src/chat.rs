//! The chat room application, shared by `examples/chat.rs` and the integration tests.
//!
//! Routes (JSON or protobuf-free JSON payloads):
//! - `chat.join` `{"name":"ana"}` → binds the session to the name, joins the room,
//!   answers `{"code":200,"members":[...]}` and pushes `onMembers` to everyone;
//! - `chat.message` (notify) `{"text":"hi"}` → pushes `onMessage`
//!   `{"from":"ana","text":"hi"}` to every member, the sender included;
//! - `chat.leave` → leaves the room (the session stays open), answers `{"code":200}`;
//! - `chat.members` → `{"code":200,"members":[...]}`.
//!
//! Closing the connection leaves the room too. Session resume is on
//! (`pitaya.session.resume.enabled`, `docs/resume.md`): a client that asks for it and
//! loses its connection comes back within the ttl still in the room, with the messages
//! sent meanwhile; it leaves the room only when the ttl passes.
//!
//! [`web`] serves a browser page for the room (`examples/web/`, with the JS client from
//! `clients/js/`).

use anyhow::Result;
use bytes::Bytes;
use pitaya::groups::GroupError;
use pitaya::{AppHandle, Component, Error, Json, Pitaya, RunningApp, Session};
use serde::{Deserialize, Serialize};

#[path = "chat_web.rs"]
pub mod web;

/// The one room of this example.
pub const ROOM: &str = "chat";

/// `chat.join` argument.
#[derive(Debug, Deserialize)]
pub struct Join {
    /// The name to chat under; it becomes the session's uid.
    pub name: String,
}

/// `chat.message` argument.
#[derive(Debug, Deserialize)]
pub struct Say {
    /// The message.
    pub text: String,
}

/// `onMessage` push.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Said {
    /// Who said it.
    pub from: String,
    /// What was said.
    pub text: String,
}

/// Answer of `chat.join`, `chat.members` and `chat.leave`, and the `onMembers` push.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Members {
    /// 200 on success.
    pub code: u16,
    /// Members, sorted.
    pub members: Vec<String>,
}

async fn members(app: &AppHandle) -> Vec<String> {
    let mut members = app.groups().members(ROOM).await.unwrap_or_default();
    members.sort();
    members
}

async fn announce_members(app: &AppHandle) {
    let list = Members { code: 200, members: members(app).await };
    if let Ok(body) = serde_json::to_vec(&list) {
        let _ = app.broadcast(ROOM, "onMembers", Bytes::from(body)).await;
    }
}

async fn join(s: Session, app: AppHandle, Json(req): Json<Join>) -> Result<Json<Members>, Error> {
    let name = req.name.trim();
    if name.is_empty() || name.len() > 32 {
        return Err(Error::bad_request("a name has 1 to 32 characters"));
    }
    if app.groups().contains(ROOM, name).await? {
        return Err(Error::new("PIT-409", format!("{name} is already in the room")));
    }
    s.bind(name).await?;
    match app.groups().add_member(ROOM, name).await {
        Ok(()) | Err(GroupError::MemberAlreadyExists) => {}
        Err(e) => return Err(e.into()),
    }
    announce_members(&app).await;
    Ok(Json(Members { code: 200, members: members(&app).await }))
}

async fn message(s: Session, app: AppHandle, Json(req): Json<Say>) {
    let Some(from) = s.uid() else { return };
    let said = Said { from: from.to_string(), text: req.text };
    if let Ok(body) = serde_json::to_vec(&said) {
        let _ = app.broadcast(ROOM, "onMessage", Bytes::from(body)).await;
    }
}

async fn leave(s: Session, app: AppHandle) -> Result<Json<Members>, Error> {
    if let Some(uid) = s.uid() {
        match app.groups().remove_member(ROOM, &uid).await {
            Ok(()) | Err(GroupError::MemberNotFound) => announce_members(&app).await,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(Members { code: 200, members: members(&app).await }))
}

async fn list(app: AppHandle) -> Result<Json<Members>, Error> {
    Ok(Json(Members { code: 200, members: members(&app).await }))
}

/// Starts the chat server on `tcp` and `ws`.
///
/// # Errors
/// Bad `PITAYA_*` configuration or addresses that cannot be bound.
pub async fn start(tcp: &str, ws: &str) -> Result<RunningApp> {
    let mut config =
        pitaya::config::PitayaConfig::load(None).map_err(|e| anyhow::anyhow!("{e}"))?;
    config.session.resume.enabled = true;
    let builder = Pitaya::builder().server_type("chat").config(config).tcp(tcp).ws(ws).component(
        Component::new("chat")
            .handler("join", join)
            .handler("message", message)
            .handler("leave", leave)
            .handler("members", list),
    );
    let running =
        builder.build().map_err(Error::into_std)?.start().await.map_err(Error::into_std)?;
    running.handle().groups().create(ROOM).await?;
    // Leaving by closing the connection: remove the member and tell the others.
    let app = running.handle().clone();
    running.handle().sessions().on_session_close(move |s| {
        if let Some(uid) = s.uid() {
            let app = app.clone();
            tokio::spawn(async move {
                if app.groups().remove_member(ROOM, &uid).await.is_ok() {
                    announce_members(&app).await;
                }
            });
        }
    });
    Ok(running)
}
