//! One incoming message handed to a C callback: [`PitayaRequest`] (what arrived) and
//! [`PitayaCall`] (the handle that answers it, now or later, and reaches its session).

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use pitaya_core::Error;
use pitaya_session::Session;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::boundary::{bytes_arg, c_string, guard_err, opt_str_arg, panic_message, str_arg};
use crate::builder::PitayaKind;

/// The message a callback is called for. Every pointer is valid only until the callback
/// returns and is owned by the library: copy what you keep.
#[repr(C)]
pub struct PitayaRequest {
    /// Request, notify or remote.
    pub kind: PitayaKind,
    /// The full route, `serverType.component.method` (NUL-terminated).
    pub route: *const c_char,
    /// The session's id on its frontend; 0 for a remote call, which has no session.
    pub session_id: i64,
    /// The uid the session is bound to; `""` when unbound or for a remote call.
    pub uid: *const c_char,
    /// The id of the session's frontend server; `""` for a session of this server or a
    /// remote call.
    pub frontend_id: *const c_char,
    /// The session's data as a JSON object (`{}` when empty or for a remote call).
    pub session_data: *const u8,
    /// Length of `session_data`.
    pub session_data_len: usize,
    /// The body as the client (or, for a remote, the calling server) sent it; NULL when
    /// `body_len` is 0.
    pub body: *const u8,
    /// Length of `body`.
    pub body_len: usize,
}

/// The handle that answers one call and reaches its session. The library owns it; it
/// stays valid until it is finished by `pitaya_call_respond` or `pitaya_call_fail`
/// (exactly once, from any thread, during the callback or later), or until the
/// callback returns non-zero. A call never finished keeps its session's later messages
/// waiting and its memory allocated: the client's request times out on its frontend.
pub struct PitayaCall {
    shared: Arc<CallShared>,
}

/// What the library and the callback share about one call.
struct CallShared {
    answer: Mutex<Option<oneshot::Sender<Result<Bytes, Error>>>>,
    /// The `PitayaCall` allocation handed to C; whoever swaps it out (a finishing
    /// function, or the library when the callback gave the call up) frees it, so it is
    /// freed exactly once.
    allocation: AtomicPtr<PitayaCall>,
    session: Option<Session>,
    runtime: Handle,
}

impl CallShared {
    /// Sends the answer, unless one was sent already.
    fn answer(&self, result: Result<Bytes, Error>) {
        let sender = self.answer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(sender) = sender {
            // The handler may have been cancelled (its frontend gone): nobody to tell.
            let _ = sender.send(result);
        }
    }

    /// Frees the allocation handed to C unless a finishing function did; whether this
    /// call freed it.
    fn release(&self) -> bool {
        let call = self.allocation.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if call.is_null() {
            return false;
        }
        // SAFETY: made by Box::into_raw in `Callback::call` and swapped out of
        // `allocation` exactly once, here.
        drop(unsafe { Box::from_raw(call) });
        true
    }
}

/// A registered callback with its user data.
pub(crate) struct Callback {
    function:
        unsafe extern "C-unwind" fn(*mut c_void, *const PitayaRequest, *mut PitayaCall) -> i32,
    user_data: UserData,
}

/// The caller's `user_data` pointer.
struct UserData(*mut c_void);

// SAFETY: the header requires user_data to be usable from any thread and to outlive the
// server (see `pitaya_builder_handler`); the library never dereferences it.
unsafe impl Send for UserData {}
// SAFETY: as for Send; the library only copies the pointer.
unsafe impl Sync for UserData {}

thread_local! {
    /// Whether this thread is running a callback, where `pitaya_shutdown` would wait for
    /// itself.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread is inside a callback.
pub(crate) fn in_callback() -> bool {
    IN_CALLBACK.with(Cell::get)
}

/// What a callback is called with, owned so it can move to a callback thread.
pub(crate) struct Incoming {
    pub(crate) kind: PitayaKind,
    pub(crate) route: String,
    pub(crate) session: Option<Session>,
    pub(crate) body: Bytes,
}

impl Callback {
    pub(crate) fn new(
        function: unsafe extern "C-unwind" fn(
            *mut c_void,
            *const PitayaRequest,
            *mut PitayaCall,
        ) -> i32,
        user_data: *mut c_void,
    ) -> Self {
        Self { function, user_data: UserData(user_data) }
    }

    /// Calls the callback on a callback thread and waits for its answer.
    pub(crate) async fn invoke(self: Arc<Self>, incoming: Incoming) -> Result<Bytes, Error> {
        let (tx, rx) = oneshot::channel();
        let shared = Arc::new(CallShared {
            answer: Mutex::new(Some(tx)),
            allocation: AtomicPtr::new(std::ptr::null_mut()),
            session: incoming.session.clone(),
            runtime: Handle::current(),
        });
        // The failure handling runs on the callback thread right after the callback,
        // not in this future: a handler future dropped meanwhile (its client gone) must
        // not leave a given-up call allocated.
        let ran = tokio::task::spawn_blocking(move || {
            let failure = match self.call(&incoming, shared.clone()) {
                Ok(0) => return,
                Ok(code) => Error::internal(format!("handler callback returned {code}")),
                Err(panic) => Error::internal(format!("handler callback panicked: {panic}")),
            };
            tracing::warn!(
                code = failure.code(),
                message = failure.message(),
                "ffi callback failed"
            );
            // The callback gave the call up: answer and free it unless it was finished.
            shared.answer(Err(failure));
            shared.release();
        })
        .await;
        if let Err(e) = ran {
            return Err(Error::internal(format!("handler callback did not run: {e}")));
        }
        rx.await.unwrap_or_else(|_| Err(Error::internal("the call was dropped without an answer")))
    }

    /// Runs the C callback on this (callback) thread: its return value, or the text of
    /// a panic that unwound out of it.
    fn call(&self, incoming: &Incoming, shared: Arc<CallShared>) -> Result<i32, String> {
        let route = c_string(&incoming.route);
        let session = incoming.session.as_ref();
        let uid = c_string(session.and_then(Session::uid).as_deref().unwrap_or(""));
        let frontend = c_string(session.and_then(Session::frontend_id).unwrap_or(""));
        let data = session.map_or_else(|| bytes::Bytes::from_static(b"{}"), Session::encoded_data);
        let request = PitayaRequest {
            kind: incoming.kind,
            route: route.as_ptr(),
            session_id: session.map_or(0, |s| {
                if s.frontend_id().is_some() { s.frontend_session_id() } else { s.id() }
            }),
            uid: uid.as_ptr(),
            frontend_id: frontend.as_ptr(),
            session_data: data.as_ptr(),
            session_data_len: data.len(),
            body: if incoming.body.is_empty() { std::ptr::null() } else { incoming.body.as_ptr() },
            body_len: incoming.body.len(),
        };
        let call = Box::into_raw(Box::new(PitayaCall { shared: shared.clone() }));
        shared.allocation.store(call, Ordering::Release);
        IN_CALLBACK.with(|c| c.set(true));
        let function = self.function;
        let user_data = self.user_data.0;
        let result = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the function pointer was registered for this contract; `request`
            // and the strings it points into outlive the call; `call` is a live
            // allocation whose ownership rules the header states.
            unsafe { function(user_data, &request, call) }
        }));
        IN_CALLBACK.with(|c| c.set(false));
        result.map_err(|p| panic_message(p.as_ref()))
    }
}

/// The live call behind `call`.
///
/// # Safety
/// `call` is NULL or a call not yet finished.
unsafe fn call_ref<'a>(call: *mut PitayaCall) -> Result<&'a PitayaCall, Error> {
    // SAFETY: forwarded from the caller.
    unsafe { call.as_ref() }.ok_or_else(|| Error::bad_request("call is NULL"))
}

/// Finishes `call` with `result` and frees it.
///
/// # Safety
/// `call` is a call not yet finished, not used by another thread.
unsafe fn finish(call: *mut PitayaCall, result: Result<Bytes, Error>) -> Result<(), Error> {
    // SAFETY: forwarded from the caller.
    let shared = unsafe { call_ref(call)? }.shared.clone();
    if !shared.release() {
        return Err(Error::bad_request("call already finished"));
    }
    shared.answer(result);
    Ok(())
}

/// Answers `call` with the `len` bytes at `data` (copied; the caller keeps ownership of
/// `data`), and frees `call`: it must not be used again. For a notify the bytes are
/// dropped.
///
/// Returns NULL, or an error (owned by the caller). When `data` is NULL with `len` > 0
/// the peer gets `PIT-500` instead and the call is finished all the same.
///
/// # Safety
/// `call` is a call not yet finished; `data` is NULL or points to `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_call_respond(
    call: *mut PitayaCall,
    data: *const u8,
    len: usize,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        match unsafe { bytes_arg(data, len, "reply data") } {
            // SAFETY: forwarded from the caller.
            Ok(bytes) => unsafe { finish(call, Ok(Bytes::copy_from_slice(bytes))) },
            Err(e) => {
                let reply =
                    Error::internal(format!("invalid reply from the handler: {}", e.message()));
                // SAFETY: forwarded from the caller.
                unsafe { finish(call, Err(reply)) }?;
                Err(e)
            }
        }
    })
}

/// Answers `call` with an error, and frees `call`: it must not be used again. `code` is
/// a Pitaya code (`PIT-404`, `PIT-499`...; NULL means `PIT-000`), `message` the
/// message (NULL means empty), `metadata_json` NULL or a JSON object of strings. A
/// client of a JSON server sees `{"code":"PIT-499","msg":"fail"}`.
///
/// Returns NULL, or an error (owned by the caller). Invalid arguments (not UTF-8,
/// metadata that is not an object of strings) finish the call with `PIT-500` and are
/// reported.
///
/// # Safety
/// `call` is a call not yet finished; the strings are NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_call_fail(
    call: *mut PitayaCall,
    code: *const c_char,
    message: *const c_char,
    metadata_json: *const c_char,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        let built = unsafe { error_from_c(code, message, metadata_json) };
        match built {
            // SAFETY: forwarded from the caller.
            Ok(error) => unsafe { finish(call, Err(error)) },
            Err(e) => {
                let reply =
                    Error::internal(format!("invalid error from the handler: {}", e.message()));
                // SAFETY: forwarded from the caller.
                unsafe { finish(call, Err(reply)) }?;
                Err(e)
            }
        }
    })
}

/// # Safety
/// The strings are NULL or NUL-terminated.
unsafe fn error_from_c(
    code: *const c_char,
    message: *const c_char,
    metadata_json: *const c_char,
) -> Result<Error, Error> {
    // SAFETY: forwarded from the caller.
    let (code, message, metadata) = unsafe {
        (
            opt_str_arg(code, "code")?,
            opt_str_arg(message, "message")?,
            opt_str_arg(metadata_json, "metadata_json")?,
        )
    };
    let mut error = Error::new(code.unwrap_or(pitaya_core::codes::UNKNOWN), message.unwrap_or(""));
    if let Some(json) = metadata {
        let map: std::collections::BTreeMap<String, String> = serde_json::from_str(json)
            .map_err(|e| Error::bad_request(format!("metadata_json: {e}")))?;
        for (k, v) in map {
            error = error.with_metadata(k, v);
        }
    }
    Ok(error)
}

/// Runs `f` on the call's runtime and waits for it, from any thread (a callback thread
/// included).
pub(crate) fn block_on<T: Send + 'static>(
    runtime: &Handle,
    f: impl std::future::Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().unwrap_or_else(|_| Err(Error::internal("the server is shutting down")))
}

/// The session of `call`.
fn session_of(call: &PitayaCall) -> Result<Session, Error> {
    call.shared.session.clone().ok_or_else(|| Error::bad_request("a remote call has no session"))
}

/// Binds the call's session to `uid` (on a backend: through its frontend, Go's
/// `session.Bind`), blocking until the frontend has answered. Call it before finishing
/// the call. Errors (caller-owned): the session is bound already, the frontend is gone,
/// a remote call has no session.
///
/// # Safety
/// `call` is a call not yet finished; `uid` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_call_bind(
    call: *mut PitayaCall,
    uid: *const c_char,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        let (call, uid) = unsafe { (call_ref(call)?, str_arg(uid, "uid")?) };
        let session = session_of(call)?;
        let uid = uid.to_owned();
        block_on(&call.shared.runtime, async move { session.bind(&uid).await })
    })
}

/// Replaces the call's session data with the JSON object `json` (`len` bytes) and sends
/// it to the session's frontend (Go's `SetData` then `PushToFront`), blocking until the
/// frontend has answered.
///
/// # Safety
/// `call` is a call not yet finished; `json` points to `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_call_set_session_data(
    call: *mut PitayaCall,
    json: *const u8,
    len: usize,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        let (call, json) = unsafe { (call_ref(call)?, bytes_arg(json, len, "json")?) };
        let session = session_of(call)?;
        session.set_encoded_data(json)?;
        block_on(&call.shared.runtime, async move { session.push_to_front().await })
    })
}
