//! [`RpcJobs`]: per-route decoding of job arguments (Go's `RPCJob.GetArgReply`), the
//! server choice (`RPCJob.ServerDiscovery`), and [`RpcSender`], the cluster RPC a job
//! ends in (`RPCJob.RPC`).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use pitaya_core::{BoxFuture, Context, Error};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Sends a user RPC through the cluster; the facade implements it for `AppHandle`.
///
/// Contract: `server_id` `None` lets the cluster pick a server of the route's type;
/// `data` is the protobuf-encoded argument; the reply is the protobuf-encoded reply.
/// An `Err` makes the job fail (and be retried by its retry rules).
pub trait RpcSender: Send + Sync + 'static {
    /// Calls `route` (`serverType.service.method`).
    fn rpc<'a>(
        &'a self,
        ctx: &'a Context,
        server_id: Option<&'a str>,
        route: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<Bytes, Error>>;
}

impl<T: RpcSender + ?Sized> RpcSender for Arc<T> {
    fn rpc<'a>(
        &'a self,
        ctx: &'a Context,
        server_id: Option<&'a str>,
        route: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<Bytes, Error>> {
        (**self).rpc(ctx, server_id, route, data)
    }
}

/// Chooses the server of a job's RPC from its route and metadata (Go's
/// `ServerDiscovery`): `Ok(None)` lets the cluster choose; `Err` fails the job.
pub type ServerChoice =
    Arc<dyn Fn(&str, &Map<String, Value>) -> Result<Option<String>, Error> + Send + Sync>;

type DecodeArg = Arc<dyn Fn(&Value) -> Result<Bytes, String> + Send + Sync>;
type CheckReply = Arc<dyn Fn(&Bytes) -> Result<(), String> + Send + Sync>;

/// The routes a worker can run, each with its argument and reply types.
///
/// A job's `Arg` is Go `encoding/json` of a protobuf struct: an object keyed by proto
/// field names, zero values usually left out, int64 as numbers, bytes as base64, enums
/// as numbers. [`RpcJobs::route`] reads it with the argument type's serde
/// `Deserialize` and sends the type's prost encoding, so the type must derive both with
/// proto field names as serde names (`#[serde(default)]` on fields Go may omit, and a
/// base64 `with` module for `bytes` fields). The reply is decoded as `R` and dropped:
/// a reply that does not decode fails the job, as in Go.
#[derive(Clone, Default)]
pub struct RpcJobs {
    routes: HashMap<String, Entry>,
    choice: Option<ServerChoice>,
}

#[derive(Clone)]
struct Entry {
    decode_arg: DecodeArg,
    check_reply: CheckReply,
}

/// What [`RpcJobs::prepare`] produces: the protobuf argument and the chosen server.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedCall {
    /// The argument, protobuf-encoded.
    pub data: Bytes,
    /// The server to call, `None` for the cluster's choice.
    pub server_id: Option<String>,
}

/// Why a job could not be prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrepareError {
    /// No route registered under this name on this worker; it may be on another host, so
    /// the job follows its retry rules.
    UnknownRoute(String),
    /// The arguments do not decode as the route's type. The job still follows its retry
    /// rules, as in Go: another server of a mixed-version cluster may decode it.
    BadArgument(String),
    /// The server choice failed.
    ServerChoice(String),
}

impl std::fmt::Display for PrepareError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownRoute(r) => write!(f, "no rpc job registered for route {r}"),
            Self::BadArgument(e) => write!(f, "cannot decode the job argument: {e}"),
            Self::ServerChoice(e) => write!(f, "cannot choose the server: {e}"),
        }
    }
}

impl RpcJobs {
    /// No routes; the cluster chooses servers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `route` with argument type `A` and reply type `R`. Registering a route
    /// again replaces it.
    pub fn route<A, R>(mut self, route: impl Into<String>) -> Self
    where
        A: prost::Message + DeserializeOwned + 'static,
        R: prost::Message + Default + 'static,
    {
        let decode_arg: DecodeArg = Arc::new(|value: &Value| {
            let value = if value.is_null() { Value::Object(Map::new()) } else { value.clone() };
            let arg: A = serde_json::from_value(value).map_err(|e| e.to_string())?;
            Ok(Bytes::from(arg.encode_to_vec()))
        });
        let check_reply: CheckReply =
            Arc::new(|bytes: &Bytes| R::decode(bytes.clone()).map(drop).map_err(|e| e.to_string()));
        self.routes.insert(route.into(), Entry { decode_arg, check_reply });
        self
    }

    /// Sets the server choice for every route (Go's `ServerDiscovery`).
    pub fn server_choice(
        mut self,
        f: impl Fn(&str, &Map<String, Value>) -> Result<Option<String>, Error> + Send + Sync + 'static,
    ) -> Self {
        self.choice = Some(Arc::new(f));
        self
    }

    /// Whether `route` is registered.
    pub fn contains(&self, route: &str) -> bool {
        self.routes.contains_key(route)
    }

    /// Decodes `arg` for `route` and chooses the server.
    ///
    /// # Errors
    /// See [`PrepareError`].
    pub fn prepare(
        &self,
        route: &str,
        metadata: &Map<String, Value>,
        arg: &Value,
    ) -> Result<PreparedCall, PrepareError> {
        let entry =
            self.routes.get(route).ok_or_else(|| PrepareError::UnknownRoute(route.into()))?;
        let data = (entry.decode_arg)(arg).map_err(PrepareError::BadArgument)?;
        let server_id = match &self.choice {
            Some(choose) => {
                choose(route, metadata).map_err(|e| PrepareError::ServerChoice(e.to_string()))?
            }
            None => None,
        };
        Ok(PreparedCall { data, server_id })
    }

    /// Checks that `reply` decodes as the route's reply type.
    ///
    /// # Errors
    /// The decode error's text.
    pub fn check_reply(&self, route: &str, reply: &Bytes) -> Result<(), String> {
        match self.routes.get(route) {
            Some(entry) => (entry.check_reply)(reply),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for RpcJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut routes: Vec<&String> = self.routes.keys().collect();
        routes.sort();
        f.debug_struct("RpcJobs")
            .field("routes", &routes)
            .field("server_choice", &self.choice.is_some())
            .finish()
    }
}
