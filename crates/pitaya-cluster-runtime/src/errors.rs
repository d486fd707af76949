//! Pitaya errors to and from the `Response.error` of a peer (spec §6.6).

use pitaya_cluster::protos;
use pitaya_core::Error;

/// A Pitaya error from a peer's `Response.error`; an empty code becomes `PIT-000`
/// (spec §6.6).
pub(crate) fn error_from_proto(e: protos::Error) -> Error {
    let code = if e.code.is_empty() { pitaya_core::codes::UNKNOWN.to_owned() } else { e.code };
    let mut err = Error::new(code, e.msg);
    for (k, v) in e.metadata {
        err = err.with_metadata(k, v);
    }
    err
}

/// The `Response.error` carrying `e`.
pub(crate) fn error_to_proto(e: &Error) -> protos::Error {
    protos::Error {
        code: e.code().to_owned(),
        msg: e.message().to_owned(),
        metadata: e.metadata().clone(),
    }
}
