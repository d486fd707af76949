//! What handlers return: [`IntoReply`] decides request vs notify, [`IntoBody`] encodes.

use bytes::Bytes;
use pitaya_core::Error;
use pitaya_serialize::{Marshal, Protobuf, Serializer};
use serde::Serialize;

use crate::extract::encode_with;
use crate::{HandlerKind, Json, Msg, Proto, Reply};

/// The message Go Pitaya sends when a handler returns no value and no error.
pub const NULL_REPLY: &str = "reply must not be null";

/// A handler's return type. `()` makes a notify handler; `Result<R, E>` with `R:`
/// [`IntoBody`] makes a request handler.
pub trait IntoReply: Send + 'static {
    /// Which kind of handler returns this.
    const KIND: HandlerKind;

    /// Turns the value into the reply body.
    ///
    /// # Errors
    /// The handler's own error, or an encoding error (`PIT-000`).
    fn into_reply(self, serializer: &dyn Serializer) -> Result<Reply, Error>;
}

impl IntoReply for () {
    const KIND: HandlerKind = HandlerKind::Notify;

    fn into_reply(self, _: &dyn Serializer) -> Result<Reply, Error> {
        Ok(None)
    }
}

impl<R: IntoBody, E: Into<Error> + Send + 'static> IntoReply for Result<R, E> {
    const KIND: HandlerKind = HandlerKind::Request;

    fn into_reply(self, serializer: &dyn Serializer) -> Result<Reply, Error> {
        self.map_err(Into::into)?.into_body(serializer).map(Some)
    }
}

/// A reply body.
pub trait IntoBody: Send + 'static {
    /// Encodes the body.
    ///
    /// # Errors
    /// `PIT-000` when the value cannot be encoded, or for `None` (`reply must not be
    /// null`).
    fn into_body(self, serializer: &dyn Serializer) -> Result<Bytes, Error>;
}

/// Raw bytes, sent unchanged.
impl IntoBody for Bytes {
    fn into_body(self, _: &dyn Serializer) -> Result<Bytes, Error> {
        Ok(self)
    }
}

/// Raw bytes, sent unchanged.
impl IntoBody for Vec<u8> {
    fn into_body(self, _: &dyn Serializer) -> Result<Bytes, Error> {
        Ok(self.into())
    }
}

/// `None` is Go's nil reply: an error for the client.
impl<T: IntoBody> IntoBody for Option<T> {
    fn into_body(self, serializer: &dyn Serializer) -> Result<Bytes, Error> {
        self.ok_or_else(|| Error::unknown(NULL_REPLY))?.into_body(serializer)
    }
}

impl<T: Serialize + Send + 'static> IntoBody for Json<T> {
    fn into_body(self, _: &dyn Serializer) -> Result<Bytes, Error> {
        pitaya_serialize::Json
            .marshal(&self.0)
            .map(Bytes::from)
            .map_err(|e| Error::unknown(e.to_string()))
    }
}

impl<T: prost::Message + Send + 'static> IntoBody for Proto<T> {
    fn into_body(self, _: &dyn Serializer) -> Result<Bytes, Error> {
        Protobuf.marshal(&self.0).map(Bytes::from).map_err(|e| Error::unknown(e.to_string()))
    }
}

impl<T: Serialize + prost::Message + Send + 'static> IntoBody for Msg<T> {
    fn into_body(self, serializer: &dyn Serializer) -> Result<Bytes, Error> {
        encode_with(serializer, &self.0).map(Bytes::from)
    }
}
