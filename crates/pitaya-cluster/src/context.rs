//! Helpers for the `reqTimeout` key of the propagated context (spec §6.3, §6.5).

use std::time::Duration;

use pitaya_config::godur;
use pitaya_core::context::REQ_TIMEOUT;
use pitaya_core::{Context, Error};

/// The timeout a caller set in `ctx`, if any.
///
/// # Errors
/// `PIT-500` with Go's text (`time: invalid duration "abc"`) when the value is a string
/// that is not a Go duration. A value that is not a string is refused the same way (Go
/// panics on it, taking the whole server down).
pub fn req_timeout(ctx: &Context) -> Result<Option<Duration>, Error> {
    // `get_str` first: it reads an encoded context in place.
    if let Some(s) = ctx.get_str(REQ_TIMEOUT) {
        return godur::parse(s).map(Some).map_err(|e| Error::internal(e.to_string()));
    }
    if !ctx.contains(REQ_TIMEOUT) {
        return Ok(None);
    }
    match ctx.get(REQ_TIMEOUT) {
        None => Ok(None),
        Some(other) => Err(Error::internal(format!("time: invalid duration {other}"))),
    }
}

/// Sets `reqTimeout` to `timeout` as a Go duration string (`"5s"`, `"1m30s"`).
pub fn set_req_timeout(ctx: &mut Context, timeout: Duration) {
    // Each client writes its one configured timeout into every call: formatted once per
    // thread and value, not per call.
    thread_local! {
        static LAST: std::cell::RefCell<Option<(Duration, String)>> =
            const { std::cell::RefCell::new(None) };
    }
    let text = LAST.with_borrow_mut(|last| match last {
        Some((d, text)) if *d == timeout => text.clone(),
        _ => last.insert((timeout, godur::format(timeout))).1.clone(),
    });
    ctx.insert(REQ_TIMEOUT, text);
}

/// The effective timeout of a call: the caller's `reqTimeout`, or `default` (which is
/// then written into `ctx`, as the Go NATS client does).
///
/// # Errors
/// As [`req_timeout`].
pub fn effective_timeout(ctx: &mut Context, default: Duration) -> Result<Duration, Error> {
    match req_timeout(ctx)? {
        Some(t) => Ok(t),
        None => {
            set_req_timeout(ctx, default);
            Ok(default)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_and_errors() {
        let mut ctx = Context::new();
        assert_eq!(req_timeout(&ctx).unwrap(), None);
        assert_eq!(effective_timeout(&mut ctx, Duration::from_secs(5)).unwrap().as_secs(), 5);
        assert_eq!(ctx.get_str(REQ_TIMEOUT), Some("5s"));
        ctx.insert(REQ_TIMEOUT, "1m30s");
        assert_eq!(req_timeout(&ctx).unwrap(), Some(Duration::from_secs(90)));
        ctx.insert(REQ_TIMEOUT, "abc");
        let e = req_timeout(&ctx).unwrap_err();
        assert_eq!((e.code(), e.message()), ("PIT-500", "time: invalid duration \"abc\""));
        ctx.insert(REQ_TIMEOUT, 5);
        assert_eq!(req_timeout(&ctx).unwrap_err().code(), "PIT-500");
    }
}
