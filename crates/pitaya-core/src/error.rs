//! [`Error`]: a `PIT-...` code, a message, metadata and an optional source.

use std::collections::BTreeMap;
use std::fmt;

use pitaya_serialize::ErrorPayload;

use crate::codes;

/// An error as Pitaya reports it to clients and peer servers: a code such as `PIT-404`,
/// a message and string metadata, plus an optional local source that never leaves the
/// process.
///
/// Shaped like tonic's `Status` and boxed so that `Result<T, Error>` stays one pointer
/// wide. Like `anyhow::Error` it does not implement `std::error::Error` itself, which lets
/// any standard error convert into it with `?`: such errors become `PIT-000` with their
/// display text as message, as Go Pitaya does with plain errors.
pub struct Error(Box<Inner>);

struct Inner {
    code: String,
    msg: String,
    metadata: BTreeMap<String, String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// An error with `code` and `msg`.
    pub fn new(code: impl Into<String>, msg: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            code: code.into(),
            msg: msg.into(),
            metadata: BTreeMap::new(),
            source: None,
        }))
    }

    /// `PIT-000`: an error without a Pitaya code.
    pub fn unknown(msg: impl Into<String>) -> Self {
        Self::new(codes::UNKNOWN, msg)
    }

    /// `PIT-400`.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(codes::BAD_REQUEST, msg)
    }

    /// `PIT-404`.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(codes::NOT_FOUND, msg)
    }

    /// `PIT-500`.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(codes::INTERNAL, msg)
    }

    /// Adds a metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.metadata.insert(key.into(), value.into());
        self
    }

    /// Attaches a local cause, kept for logs; it is not sent to peers.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.0.source = Some(Box::new(source));
        self
    }

    /// The code, e.g. `PIT-404`.
    pub fn code(&self) -> &str {
        &self.0.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0.msg
    }

    /// The metadata, sorted by key.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.0.metadata
    }

    /// The local cause, if any.
    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.0.source.as_deref()
    }

    /// An error received from a peer; an empty code becomes `PIT-000` (spec §6.6).
    pub fn from_payload(p: ErrorPayload) -> Self {
        let code = p.code_or_unknown().to_owned();
        let mut e = Error::new(code, p.msg);
        e.0.metadata = p.metadata;
        e
    }

    /// Wraps the error in a type that implements `std::error::Error`, for code that
    /// collects errors as `anyhow::Error` or `Box<dyn std::error::Error>`.
    pub fn into_std(self) -> StdError {
        StdError(self)
    }

    /// The payload sent on the wire (spec §2.5).
    pub fn to_payload(&self) -> ErrorPayload {
        ErrorPayload {
            code: self.0.code.clone(),
            msg: self.0.msg.clone(),
            metadata: self.0.metadata.clone(),
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(e: E) -> Self {
        Error::unknown(e.to_string()).with_source(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.code, self.0.msg)?;
        if !self.0.metadata.is_empty() {
            write!(f, " {:?}", self.0.metadata)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("code", &self.0.code)
            .field("msg", &self.0.msg)
            .field("metadata", &self.0.metadata)
            .field("source", &self.0.source)
            .finish()
    }
}

/// An [`Error`] as a `std::error::Error` (see [`Error::into_std`]).
#[derive(Debug)]
pub struct StdError(pub Error);

impl fmt::Display for StdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for StdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.0.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl PartialEq for Error {
    /// Compares what peers see: code, message and metadata.
    fn eq(&self, other: &Self) -> bool {
        self.0.code == other.0.code
            && self.0.msg == other.0.msg
            && self.0.metadata == other.0.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_errors_become_pit_000() {
        fn parse() -> Result<i32, Error> {
            Ok("x".parse::<i32>()?)
        }
        let e = parse().unwrap_err();
        assert_eq!(e.code(), "PIT-000");
        assert_eq!(e.message(), "invalid digit found in string");
        assert!(e.source().is_some());
    }

    #[test]
    fn payload_round_trip() {
        let e = Error::new("PIT-433", "test error").with_metadata("some", "meta");
        let p = e.to_payload();
        assert_eq!(p.metadata["some"], "meta");
        assert_eq!(Error::from_payload(p), e);
        assert_eq!(Error::from_payload(ErrorPayload::new("", "x")).code(), "PIT-000");
        assert_eq!(e.to_string(), "PIT-433: test error {\"some\": \"meta\"}");
    }

    #[test]
    fn stays_one_pointer_wide() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }
}
