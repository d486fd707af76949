//! Extractors: typed views of a [`Request`] that handlers take as arguments.
//!
//! Context extractors ([`FromRequestParts`]) borrow the request and can come in any
//! order; one payload extractor ([`FromRequest`]) consumes it and comes last. A failed
//! payload extractor answers `PIT-400` with the decoder's text, as Go Pitaya does for an
//! argument it cannot unmarshal.

use bytes::Bytes;
use pitaya_codec::Route;
use pitaya_core::Error;
use pitaya_serialize::{Marshal, Protobuf, Serializer, SerializerKind, Unmarshal};
use pitaya_session::Session;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Request;

/// An extractor that only looks at the request's context.
pub trait FromRequestParts: Sized {
    /// Extracts the value.
    ///
    /// # Errors
    /// The error answered to the client instead of running the handler.
    fn from_request_parts(req: &Request) -> Result<Self, Error>;
}

mod private {
    #[derive(Debug, Clone, Copy)]
    pub enum ViaParts {}
    #[derive(Debug, Clone, Copy)]
    pub enum ViaRequest {}
}

/// An extractor that consumes the request, typically to decode its payload. Every
/// [`FromRequestParts`] type is one too (the marker `M` keeps the two impls apart, as in
/// axum).
pub trait FromRequest<M = private::ViaRequest>: Sized {
    /// Extracts the value.
    ///
    /// # Errors
    /// The error answered to the client instead of running the handler.
    fn from_request(req: Request) -> Result<Self, Error>;
}

impl<T: FromRequestParts> FromRequest<private::ViaParts> for T {
    fn from_request(req: Request) -> Result<Self, Error> {
        T::from_request_parts(&req)
    }
}

impl FromRequestParts for Session {
    fn from_request_parts(req: &Request) -> Result<Self, Error> {
        Ok(req.session.clone())
    }
}

/// The propagated context, to pass to the RPCs a handler makes: the incoming RPC's
/// context on a backend, or a new one (request id, route, start time) for a client
/// message handled on its frontend.
impl FromRequestParts for pitaya_core::Context {
    fn from_request_parts(req: &Request) -> Result<Self, Error> {
        if req.ctx.is_empty() {
            Ok(pitaya_core::Context::for_request(&req.route.to_string()))
        } else {
            Ok(req.ctx.clone())
        }
    }
}

/// The route and message id of the request being handled.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    /// The route, server type included.
    pub route: Route,
    /// The message id; 0 for a notify.
    pub id: u64,
}

impl FromRequestParts for RouteInfo {
    fn from_request_parts(req: &Request) -> Result<Self, Error> {
        Ok(Self { route: req.route.clone(), id: req.id })
    }
}

/// A value of type `T` from the application state.
///
/// Extraction fails with `PIT-500` when no value of that type was registered: a
/// programming error, reported rather than panicking.
#[derive(Debug, Clone)]
pub struct State<T>(pub T);

impl<T: Clone + Send + Sync + 'static> FromRequestParts for State<T> {
    fn from_request_parts(req: &Request) -> Result<Self, Error> {
        req.state.get::<T>().map(State).ok_or_else(|| {
            Error::internal(format!("no state of type {} registered", std::any::type_name::<T>()))
        })
    }
}

/// The raw payload.
impl FromRequest for Bytes {
    fn from_request(req: Request) -> Result<Self, Error> {
        Ok(req.data)
    }
}

/// A JSON payload or reply, whatever the server's serializer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Json<T> {
    fn from_request(req: Request) -> Result<Self, Error> {
        pitaya_serialize::Json.unmarshal(&req.data).map(Json).map_err(bad_request)
    }
}

/// A protobuf payload or reply, whatever the server's serializer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Proto<T>(pub T);

impl<T: prost::Message + Default> FromRequest for Proto<T> {
    fn from_request(req: Request) -> Result<Self, Error> {
        Protobuf.unmarshal(&req.data).map(Proto).map_err(bad_request)
    }
}

/// A payload or reply in the server's serializer (`pitaya.serializertype`): JSON or
/// protobuf. `T` must support both, e.g. a prost message that also derives serde.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Msg<T>(pub T);

impl<T: DeserializeOwned + prost::Message + Default> FromRequest for Msg<T> {
    fn from_request(req: Request) -> Result<Self, Error> {
        decode_with(req.serializer.as_ref(), &req.data).map(Msg)
    }
}

pub(crate) fn decode_with<T: DeserializeOwned + prost::Message + Default>(
    s: &dyn Serializer,
    data: &[u8],
) -> Result<T, Error> {
    match s.kind() {
        SerializerKind::Json => pitaya_serialize::Json.unmarshal(data),
        SerializerKind::Protobuf => Protobuf.unmarshal(data),
    }
    .map_err(bad_request)
}

/// Encodes `value` with serializer `s` (JSON or protobuf), as [`Msg`] replies are.
///
/// # Errors
/// `PIT-000` when the value cannot be encoded.
pub fn encode_with<T: Serialize + prost::Message>(
    s: &dyn Serializer,
    value: &T,
) -> Result<Vec<u8>, Error> {
    match s.kind() {
        SerializerKind::Json => pitaya_serialize::Json.marshal(value),
        SerializerKind::Protobuf => Protobuf.marshal(value),
    }
    .map_err(|e| Error::unknown(e.to_string()))
}

fn bad_request(e: pitaya_serialize::SerializeError) -> Error {
    Error::bad_request(e.to_string())
}

/// Whether [`Valid`] checks values: Pitaya's
/// `pitaya.defaultpipelines.structvalidation.enabled`, stored in the application state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StructValidation(pub bool);

/// A payload extractor whose value is checked with the
/// [`validator`](https://docs.rs/validator) crate before the handler runs, when struct
/// validation is enabled (`pitaya.defaultpipelines.structvalidation.enabled`, off by
/// default, as Go's default pipeline). A failure answers `PIT-000` with the validator's
/// text, as Go does; with validation off, values pass through unchecked.
///
/// ```
/// use pitaya_handler::{Json, Valid};
/// use pitaya_core::Error;
///
/// #[derive(serde::Deserialize, validator::Validate)]
/// struct Join {
///     #[validate(length(min = 1, max = 32))]
///     name: String,
/// }
///
/// async fn join(Valid(Json(req)): Valid<Json<Join>>) -> Result<Json<String>, Error> {
///     Ok(Json(req.name))
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Valid<E>(pub E);

/// Payload extractors whose value can be validated.
pub trait ValidatePayload {
    /// Runs the value's validation rules.
    ///
    /// # Errors
    /// The validator's report.
    fn validate_payload(&self) -> Result<(), validator::ValidationErrors>;
}

impl<T: validator::Validate> ValidatePayload for Json<T> {
    fn validate_payload(&self) -> Result<(), validator::ValidationErrors> {
        self.0.validate()
    }
}

impl<T: validator::Validate> ValidatePayload for Proto<T> {
    fn validate_payload(&self) -> Result<(), validator::ValidationErrors> {
        self.0.validate()
    }
}

impl<T: validator::Validate> ValidatePayload for Msg<T> {
    fn validate_payload(&self) -> Result<(), validator::ValidationErrors> {
        self.0.validate()
    }
}

impl<E: FromRequest + ValidatePayload> FromRequest for Valid<E> {
    fn from_request(req: Request) -> Result<Self, Error> {
        let enabled = req.state.get::<StructValidation>().is_some_and(|v| v.0);
        let value = E::from_request(req)?;
        if enabled {
            value.validate_payload().map_err(|e| Error::unknown(e.to_string()))?;
        }
        Ok(Valid(value))
    }
}
