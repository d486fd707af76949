//! Pitaya's error codes (spec §2.5). Applications may use any other string too.

/// Any error that is not a Pitaya error: plain errors, panics, pipeline failures.
pub const UNKNOWN: &str = "PIT-000";
/// Bad request: undecodable route or argument, request on a notify route.
pub const BAD_REQUEST: &str = "PIT-400";
/// Handler or remote not found.
pub const NOT_FOUND: &str = "PIT-404";
/// An RPC timed out on the caller's side.
pub const TIMEOUT: &str = "PIT-408";
/// A write to the connection failed (metrics code).
pub const CLOSED_REQUEST: &str = "PIT-498";
/// The client went away before the answer (metrics code).
pub const CLIENT_CLOSED_REQUEST: &str = "PIT-499";
/// Internal error: no server of a type, missing RPC context, server-side timeout.
pub const INTERNAL: &str = "PIT-500";
/// A request timed out on the client's side (never sent on the wire).
pub const CLIENT_TIMEOUT: &str = "PIT-504";
