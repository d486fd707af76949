//! Handlers: the application code a client's requests and notifies reach.
//!
//! **Layer:** contracts (the table in `xtask/src/layers.rs`): may depend on crates of the
//! foundation, serialization, core and services layers.
//!
//! Handlers are plain async functions, in axum's shape: context extractors in any order,
//! then at most one payload extractor last, returning `Result<R, Error>` for a request
//! route or `()` for a notify route.
//!
//! ```
//! use pitaya_handler::{Component, Json, State};
//! use pitaya_session::Session;
//! use pitaya_core::Error;
//!
//! #[derive(serde::Deserialize)]
//! struct Join { name: String }
//! #[derive(serde::Serialize)]
//! struct Joined { code: u16 }
//!
//! async fn join(s: Session, Json(req): Json<Join>) -> Result<Json<Joined>, Error> {
//!     s.bind(&req.name).await?;
//!     Ok(Json(Joined { code: 200 }))
//! }
//!
//! async fn ping(_s: Session) {}
//!
//! let room = Component::new("room").handler("join", join).handler("ping", ping);
//! ```
//!
//! # Layout
//! - [`extract`]: [`FromRequestParts`] / [`FromRequest`] and the built-in extractors
//!   ([`Session`](pitaya_session::Session), [`State`], [`RouteInfo`], [`Json`], [`Proto`],
//!   [`Msg`], [`Bytes`](bytes::Bytes)) and [`Valid`] for struct validation.
//! - [`reply`]: what handlers return ([`IntoReply`], [`IntoBody`]).
//! - [`handler`]: the [`Handler`] trait, implemented for async fns.
//! - [`component`]: [`Component`] (a named set of handlers) and [`Lifecycle`] hooks.
//! - [`router`]: [`Router`], the `service.method` table, and [`RouterService`], the tower
//!   service at the bottom of every pipeline.
//! - [`pipeline`]: before and after hooks as tower layers ([`before_fn`], [`after_fn`]).
//! - [`docs`]: [`Docs`], the self-description served to tools (routes, types, protobuf
//!   descriptors).
//! - [`remote`]: [`RemoteComponent`]s, the methods other servers call by RPC, and the
//!   [`Remotes`] table.

pub mod component;
pub mod docs;
pub mod extract;
pub mod handler;
pub mod pipeline;
pub mod remote;
pub mod reply;
pub mod request;
pub mod router;
pub mod state;

pub use component::{Component, Lifecycle};
pub use docs::{Docs, Signature};
pub use extract::{
    FromRequest, FromRequestParts, Json, Msg, Proto, RouteInfo, State, StructValidation, Valid,
    ValidatePayload,
};
pub use handler::{Handler, HandlerKind};
pub use pipeline::{after_fn, before_fn};
pub use remote::{RemoteComponent, RemoteRequest, Remotes};
pub use reply::{IntoBody, IntoReply};
pub use request::{Reply, Request};
pub use router::{Router, RouterService};
pub use state::AppState;

/// The type-erased service every pipeline wraps: a request in, an optional reply body out.
pub type HandlerService = tower::util::BoxCloneSyncService<Request, Reply, pitaya_core::Error>;
