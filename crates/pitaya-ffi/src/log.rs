//! The log callback: the library's `tracing` events, handed to C.

use std::ffi::{c_char, c_void};
use std::fmt::Write as _;
use std::sync::{Once, RwLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::boundary::{c_string, guard};

/// A log callback: `level` 1 (error) to 5 (trace), `target` the Rust module that logged
/// (`pitaya_nats::client`), `message` the event's message followed by its fields
/// (`key=value`). Both strings are valid only during the call.
///
/// Threads: called from any of the library's threads, several at once; it must not
/// block for long and must not unwind.
pub type PitayaLogFn = Option<
    unsafe extern "C-unwind" fn(
        user_data: *mut c_void,
        level: i32,
        target: *const c_char,
        message: *const c_char,
    ),
>;

struct Sink {
    function: unsafe extern "C-unwind" fn(*mut c_void, i32, *const c_char, *const c_char),
    user_data: *mut c_void,
    max_level: i32,
}

// SAFETY: the header requires user_data to be usable from any thread; the library only
// passes the pointer back.
unsafe impl Send for Sink {}
// SAFETY: as for Send.
unsafe impl Sync for Sink {}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
static INSTALL: Once = Once::new();

/// Sends the library's log events of level `max_level` and more severe (1 error, 2
/// warn, 3 info, 4 debug, 5 trace) to `callback`; a NULL `callback` or `max_level` 0
/// turns logging off (the default). Process-wide; may be called again, at any time, to
/// replace the callback. `user_data` is passed to every call and must stay valid until
/// the callback is replaced.
///
/// The library installs its log handler as the process's `tracing` subscriber the first
/// time; a Rust program that installed its own keeps it, and this callback then gets
/// nothing.
///
/// # Safety
/// `callback` is NULL or follows the contract of `PitayaLogFn`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_set_log_callback(
    callback: PitayaLogFn,
    user_data: *mut c_void,
    max_level: i32,
) {
    guard((), || {
        INSTALL.call_once(|| {
            let _ = tracing_subscriber::registry().with(CallbackLayer).try_init();
        });
        let sink = callback.filter(|_| max_level > 0).map(|function| Sink {
            function,
            user_data,
            max_level,
        });
        *SINK.write().unwrap_or_else(|e| e.into_inner()) = sink;
    });
}

fn level_number(level: Level) -> i32 {
    match level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

struct CallbackLayer;

impl<S: Subscriber> Layer<S> for CallbackLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let sink = SINK.read().unwrap_or_else(|e| e.into_inner());
        let Some(sink) = sink.as_ref() else { return };
        let level = level_number(*event.metadata().level());
        if level > sink.max_level {
            return;
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        let target = c_string(event.metadata().target());
        let message = c_string(text.0.trim_start());
        let _ = std::panic::catch_unwind(|| {
            // SAFETY: the function was registered for this contract; the strings live
            // until it returns.
            unsafe { (sink.function)(sink.user_data, level, target.as_ptr(), message.as_ptr()) }
        });
    }
}

/// The message, then the other fields as `key=value`.
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    static SEEN: Mutex<Vec<(i32, String, String)>> = Mutex::new(Vec::new());

    unsafe extern "C-unwind" fn collect(
        _: *mut c_void,
        level: i32,
        target: *const c_char,
        message: *const c_char,
    ) {
        // SAFETY: both strings are valid during the call, as the contract says.
        let (target, message) = unsafe {
            (
                std::ffi::CStr::from_ptr(target).to_string_lossy().into_owned(),
                std::ffi::CStr::from_ptr(message).to_string_lossy().into_owned(),
            )
        };
        SEEN.lock().unwrap().push((level, target, message));
    }

    #[test]
    fn events_up_to_the_level_reach_the_callback_until_it_is_removed() {
        // SAFETY: `collect` follows the log callback's contract.
        unsafe { pitaya_set_log_callback(Some(collect), std::ptr::null_mut(), 2) };
        tracing::warn!(answer = 42, "hello");
        tracing::info!("too verbose for level 2");
        // SAFETY: NULL turns logging off.
        unsafe { pitaya_set_log_callback(None, std::ptr::null_mut(), 5) };
        tracing::error!("after removal");
        let seen = SEEN.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        let (level, target, message) = &seen[0];
        assert_eq!(
            (*level, target.as_str(), message.as_str()),
            (2, "pitaya_ffi::log::tests", "hello answer=42")
        );
    }
}
