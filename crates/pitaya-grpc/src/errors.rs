//! Go's error texts and the mapping of gRPC statuses to Pitaya errors (spec §2.5, §7).

use pitaya_cluster::{Unreachable, UnreachableKind};
use pitaya_core::Error;
use tonic::{Code, Status};

/// Go's `ErrNoConnectionToServer`: the target has no usable gRPC address, or left
/// service discovery (spec §7).
pub const NO_CONNECTION: &str = "rpc client has no connection to the chosen server";

/// Go's `ErrNoBindingStorageModule`: reaching a user by uid over gRPC needs the binding
/// storage (spec §8.6).
pub const NO_BINDING_STORAGE: &str = "for sending remote pushes or using unique session module while using grpc you need to pass it a BindingStorage";

/// Go's `ErrNoContextFound`: the status of a `Call` whose `Request.metadata` is missing
/// or not a JSON object (spec §6.5, §7).
pub const NO_CONTEXT: &str = "no context found";

/// What Go's gRPC client reports when a call outlives its deadline: grpc-go's text for
/// its own `context deadline exceeded`, passed through raw, so the caller (and a client
/// whose request was forwarded) gets it as `PIT-000` with no metadata (spec §2.5, §7).
pub const DEADLINE_EXCEEDED: &str =
    "rpc error: code = DeadlineExceeded desc = context deadline exceeded";

/// The message of a status after the client stopped.
pub(crate) const STOPPED: &str = "rpc client: stopped";

/// Marked [`Unreachable`]: nothing was sent, and the cluster runtime may route around
/// the target.
pub(crate) fn no_connection() -> Error {
    Error::unknown(NO_CONNECTION).with_source(Unreachable::new(UnreachableKind::NoConnection))
}

pub(crate) fn no_binding_storage() -> Error {
    Error::unknown(NO_BINDING_STORAGE)
}

pub(crate) fn stopped() -> Error {
    Error::unknown(STOPPED)
}

/// What went wrong with one gRPC call, before it becomes an [`Error`].
pub(crate) enum CallFailure {
    /// Our deadline passed: our timer fired, or a tonic server enforcing the
    /// `grpc-timeout` we sent gave up first.
    TimedOut,
    /// Any other status: dial failures, the peer's `Unknown` errors.
    Status(Status),
}

impl From<Status> for CallFailure {
    fn from(status: Status) -> Self {
        // tonic's server-side `grpc-timeout` enforcement answers Cancelled "Timeout
        // expired"; that is our own deadline seen from the other end. A peer's own
        // DeadlineExceeded status passes through with its message, as in grpc-go.
        let tonic_timeout =
            status.code() == Code::Cancelled && status.message() == "Timeout expired";
        if tonic_timeout { Self::TimedOut } else { Self::Status(status) }
    }
}

impl CallFailure {
    /// The error a caller gets, as Go's gRPC client returns it: `PIT-000` with grpc-go's
    /// text, `rpc error: code = <Code> desc = <message>`, and no metadata. A timeout is
    /// [`DEADLINE_EXCEEDED`], not the `PIT-408` of the NATS client.
    pub(crate) fn into_error(self) -> Error {
        match self {
            Self::TimedOut => Error::unknown(DEADLINE_EXCEEDED),
            Self::Status(status) => status_error(status),
        }
    }
}

/// `PIT-000` with grpc-go's `status.Error` text.
///
/// A status made on this side from a transport error (a failed dial) says little by
/// itself (`tcp connect error`), so the error's causes are appended.
///
/// `Unavailable` is marked [`Unreachable`] (a local source; the text stays grpc-go's):
/// tonic gives it for a refused, failed or reset connection and an expired keep-alive,
/// and a Pitaya server only sends it while it stops, so the target is gone or going.
pub(crate) fn status_error(status: Status) -> Error {
    let mut desc = status.message().to_owned();
    let mut cause = std::error::Error::source(&status);
    while let Some(c) = cause {
        let text = c.to_string();
        if !desc.ends_with(&text) {
            desc.push_str(": ");
            desc.push_str(&text);
        }
        cause = c.source();
    }
    let text = format!("rpc error: code = {} desc = {desc}", go_code(status.code()));
    if status.code() == Code::Unavailable {
        let mark = Unreachable::new(UnreachableKind::Unavailable).with_source(status);
        return Error::unknown(text).with_source(mark);
    }
    Error::unknown(text).with_source(status)
}

/// grpc-go's name of `code` (`codes.Code.String()`); it spells `Canceled` with one l.
fn go_code(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_like_grpc_go() {
        let e = status_error(Status::unknown("session not found"));
        assert_eq!(e.code(), "PIT-000");
        assert_eq!(e.message(), "rpc error: code = Unknown desc = session not found");
        let e = status_error(Status::cancelled("x"));
        assert_eq!(e.message(), "rpc error: code = Canceled desc = x");
        assert_eq!(go_code(Code::Unavailable), "Unavailable");
    }

    #[test]
    fn only_unreachable_targets_are_marked() {
        use pitaya_cluster::unreachable_kind;
        let e = status_error(Status::unavailable("tcp connect error"));
        assert_eq!(e.message(), "rpc error: code = Unavailable desc = tcp connect error");
        assert_eq!(unreachable_kind(&e), Some(UnreachableKind::Unavailable));
        assert_eq!(unreachable_kind(&no_connection()), Some(UnreachableKind::NoConnection));
        assert_eq!(no_connection().message(), NO_CONNECTION);
        for e in [
            status_error(Status::unknown("session not found")),
            status_error(Status::internal("h2 protocol error")),
            CallFailure::TimedOut.into_error(),
        ] {
            assert_eq!(unreachable_kind(&e), None, "{e}");
        }
    }

    #[test]
    fn deadlines_read_like_grpc_go() {
        for failure in [CallFailure::TimedOut, Status::cancelled("Timeout expired").into()] {
            let e = failure.into_error();
            assert_eq!((e.code(), e.message()), ("PIT-000", DEADLINE_EXCEEDED));
            assert!(e.metadata().is_empty());
        }
        let e = CallFailure::from(Status::deadline_exceeded("context deadline exceeded"));
        assert_eq!(e.into_error().message(), DEADLINE_EXCEEDED);
        let e = CallFailure::from(Status::cancelled("other")).into_error();
        assert_eq!((e.code(), e.message()), ("PIT-000", "rpc error: code = Canceled desc = other"));
    }
}
