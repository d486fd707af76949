//! The body of an error response (spec §2.5): a `protos.Error` in the app serializer.

use std::collections::BTreeMap;

use pitaya_protos::protos;
use serde::{Deserialize, Serialize};

/// Code of errors that carry no Pitaya code of their own.
pub const UNKNOWN_CODE: &str = "PIT-000";

/// An error as a client (or a peer server) sees it: a `PIT-...` code, a message and
/// string metadata.
///
/// JSON output matches Go's: keys `code`, `msg`, `metadata` in that order, each omitted
/// when empty, metadata keys sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorPayload {
    /// The code, e.g. `PIT-404`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code: String,
    /// Human-readable text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub msg: String,
    /// Extra key/value details.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl ErrorPayload {
    /// An error with `code` and `msg` and no metadata.
    pub fn new(code: impl Into<String>, msg: impl Into<String>) -> Self {
        Self { code: code.into(), msg: msg.into(), metadata: BTreeMap::new() }
    }

    /// Adds one metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The code, or [`UNKNOWN_CODE`] when it is empty (how a Go frontend relays a remote
    /// error without code, spec §6.6).
    pub fn code_or_unknown(&self) -> &str {
        if self.code.is_empty() { UNKNOWN_CODE } else { &self.code }
    }
}

impl From<protos::Error> for ErrorPayload {
    fn from(e: protos::Error) -> Self {
        Self { code: e.code, msg: e.msg, metadata: e.metadata }
    }
}

impl From<ErrorPayload> for protos::Error {
    fn from(e: ErrorPayload) -> Self {
        Self { code: e.code, msg: e.msg, metadata: e.metadata }
    }
}
