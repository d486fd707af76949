//! [`Unreachable`]: the mark an [`RpcClient`](crate::RpcClient) puts on a call that
//! never reached its target, so that the cluster runtime can route around the target
//! without matching error texts.

use std::fmt;

use pitaya_core::Error;

/// Why a call did not reach its target.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnreachableKind {
    /// Nobody serves the target's subject (NATS "no responders"): the server is gone or
    /// lost its connection to NATS.
    NoResponders,
    /// The transport could not reach the target: connection refused or reset, dial
    /// failure, keep-alive expiry (gRPC `Unavailable`).
    Unavailable,
    /// The client holds no connection to the target (no usable address, or it left
    /// service discovery).
    NoConnection,
}

/// The local source of an [`RpcClient::call`](crate::RpcClient::call) error when the
/// transport knows the request was not delivered to a live target.
///
/// It is a *local* source ([`Error::with_source`]): it never travels on the wire, so the
/// code and message a client or peer sees stay Go's. A timeout is never marked: it does
/// not tell a dead server from a slow handler.
#[derive(Debug)]
pub struct Unreachable {
    kind: UnreachableKind,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Unreachable {
    /// A mark of `kind`, without a cause.
    pub fn new(kind: UnreachableKind) -> Self {
        Self { kind, source: None }
    }

    /// The mark with the transport's own error as its cause, kept for logs.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Why the target was not reached.
    pub fn kind(&self) -> UnreachableKind {
        self.kind
    }
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.kind {
            UnreachableKind::NoResponders => "no responders",
            UnreachableKind::Unavailable => "unavailable",
            UnreachableKind::NoConnection => "no connection",
        };
        write!(f, "target server unreachable: {why}")
    }
}

impl std::error::Error for Unreachable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// The [`UnreachableKind`] of `error` when its local source (or a cause of it) is an
/// [`Unreachable`] mark; `None` for every other error, timeouts included.
pub fn unreachable_kind(error: &Error) -> Option<UnreachableKind> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> =
        error.source().map(|s| s as &(dyn std::error::Error + 'static));
    while let Some(c) = cause {
        if let Some(mark) = c.downcast_ref::<Unreachable>() {
            return Some(mark.kind);
        }
        cause = c.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_errors_are_found_and_keep_their_wire_form() {
        let e = Error::unknown("nats: no responders available for request")
            .with_source(Unreachable::new(UnreachableKind::NoResponders));
        assert_eq!(unreachable_kind(&e), Some(UnreachableKind::NoResponders));
        assert_eq!(e.code(), "PIT-000");
        assert!(e.metadata().is_empty());
        assert_eq!(e.to_payload().msg, "nats: no responders available for request");
    }

    #[test]
    fn marks_with_a_cause_are_found_and_unmarked_errors_are_not() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let mark = Unreachable::new(UnreachableKind::Unavailable).with_source(io);
        assert!(std::error::Error::source(&mark).is_some());
        let e = Error::unknown("rpc error: code = Unavailable desc = x").with_source(mark);
        assert_eq!(unreachable_kind(&e), Some(UnreachableKind::Unavailable));
        assert_eq!(unreachable_kind(&Error::unknown("rpc client: request timeout")), None);
        let plain = Error::unknown("x").with_source(std::io::Error::other("y"));
        assert_eq!(unreachable_kind(&plain), None);
    }
}
