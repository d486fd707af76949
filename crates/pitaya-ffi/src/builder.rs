//! [`PitayaBuilder`]: what a server is made of, set from C before `pitaya_start`.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use pitaya_config::ConfigLoader;
use pitaya_core::Error;
use serde_json::Value;

use crate::boundary::{guard, guard_err, opt_str_arg, str_arg};
use crate::call::{Callback, PitayaCall, PitayaRequest};

/// What kind of message a handler serves, and what a callback was called for.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PitayaKind {
    /// A client request (answered with bytes or an error).
    Request = 0,
    /// A client notify (its answer is dropped; the client expects none).
    Notify = 1,
    /// A remote, called by another server through user RPC (`pitaya_builder_remote`).
    Remote = 2,
}

/// The cluster transports, as Go Pitaya offers them.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PitayaTransport {
    /// etcd discovery and NATS RPC (Go's default), from `pitaya.cluster.sd.etcd.*` and
    /// `pitaya.cluster.rpc.{client,server}.nats.*`.
    EtcdNats = 0,
    /// etcd discovery and gRPC RPC with the etcd binding storage, from
    /// `pitaya.cluster.rpc.{client,server}.grpc.*` and
    /// `pitaya.modules.bindingstorage.etcd.*`. Needs the metadata `grpcHost` (the address
    /// peers reach this server at); the port is `pitaya.cluster.rpc.server.grpc.port`.
    EtcdGrpc = 1,
}

/// A handler or remote callback.
///
/// Called with the `user_data` given at registration, the message (`request`, valid
/// only until the callback returns: copy what you keep) and `call`, the handle that
/// answers it. Return 0 after answering, or after arranging to answer later from any
/// thread, with `pitaya_call_respond` or `pitaya_call_fail` (exactly once; a notify
/// must be finished too, its answer is dropped). Any other return value means "failed":
/// the library answers `PIT-500` and frees `call`, which the callback must then not
/// touch again.
///
/// Threads: callbacks run on the library's callback threads, several at once (one
/// session's client messages one at a time, in order), never on the thread that called
/// `pitaya_start`. They may block (an RPC, a database call) and call any function of
/// this header except `pitaya_shutdown`. They must not unwind into the library (no C++
/// exception may leave them); a Rust callback that panics is caught and answered with
/// `PIT-500`.
pub type PitayaHandlerFn = Option<
    unsafe extern "C-unwind" fn(
        user_data: *mut c_void,
        request: *const PitayaRequest,
        call: *mut PitayaCall,
    ) -> i32,
>;

/// A server being described: type, configuration, metadata, transport, acceptors,
/// handlers and remotes. Made by `pitaya_builder_new`, then consumed by `pitaya_start`
/// (or freed by `pitaya_builder_free`). Not thread-safe: use it from one thread at a
/// time.
pub struct PitayaBuilder {
    pub(crate) server_type: String,
    pub(crate) frontend: bool,
    pub(crate) loader: ConfigLoader,
    pub(crate) metadata: Vec<(String, String)>,
    pub(crate) transport: PitayaTransport,
    /// `(websocket, address)`.
    pub(crate) acceptors: Vec<(bool, String)>,
    pub(crate) handlers: Vec<Registration>,
}

/// One handler or remote.
pub(crate) struct Registration {
    pub(crate) component: String,
    pub(crate) method: String,
    pub(crate) kind: PitayaKind,
    pub(crate) callback: Arc<Callback>,
}

/// A builder for a server of type `server_type`: a frontend (clients connect to it;
/// give it an acceptor) or a backend (reached through the cluster only). Its
/// configuration starts from Go Pitaya's defaults and the `PITAYA_*` environment
/// variables; keys set on the builder override both.
///
/// Returns NULL when `server_type` is NULL, empty or not UTF-8. The caller owns the
/// builder and passes it to `pitaya_start` or `pitaya_builder_free`.
///
/// # Safety
/// `server_type` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_builder_new(
    server_type: *const c_char,
    frontend: bool,
) -> *mut PitayaBuilder {
    guard(std::ptr::null_mut(), || {
        // SAFETY: forwarded from the caller.
        let Ok(server_type) = (unsafe { str_arg(server_type, "server_type") }) else {
            return std::ptr::null_mut();
        };
        if server_type.is_empty() {
            return std::ptr::null_mut();
        }
        Box::into_raw(Box::new(PitayaBuilder {
            server_type: server_type.to_owned(),
            frontend,
            loader: ConfigLoader::new().env(),
            metadata: Vec::new(),
            transport: PitayaTransport::EtcdNats,
            acceptors: Vec::new(),
            handlers: Vec::new(),
        }))
    })
}

/// Frees a builder that was not started. `builder` may be NULL.
///
/// # Safety
/// `builder` is NULL or a builder from `pitaya_builder_new` not yet started or freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_builder_free(builder: *mut PitayaBuilder) {
    guard((), || {
        if !builder.is_null() {
            // SAFETY: made by Box::into_raw in `pitaya_builder_new`, given back once.
            drop(unsafe { Box::from_raw(builder) });
        }
    });
}

/// The builder behind `builder`.
///
/// # Safety
/// `builder` is NULL or a live builder used by this thread only.
unsafe fn builder_mut<'a>(builder: *mut PitayaBuilder) -> Result<&'a mut PitayaBuilder, Error> {
    // SAFETY: forwarded from the caller.
    unsafe { builder.as_mut() }.ok_or_else(|| Error::bad_request("builder is NULL"))
}

/// Sets one configuration key, in Pitaya's dotted form
/// (`pitaya.cluster.sd.etcd.prefix`), to a string value, read as Go Pitaya reads its
/// configuration: numbers, booleans and Go durations (`"5s"`) from their text, lists
/// from comma-separated text (`"a:2379,b:2379"`). A bad value is reported by
/// `pitaya_start`, naming the key.
///
/// Returns NULL, or an error (owned by the caller) for a NULL or non-UTF-8 argument.
///
/// # Safety
/// `builder` is a live builder; `key` and `value` are NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_builder_set(
    builder: *mut PitayaBuilder,
    key: *const c_char,
    value: *const c_char,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        let (b, key, value) =
            unsafe { (builder_mut(builder)?, str_arg(key, "key")?, str_arg(value, "value")?) };
        set_key(b, key, Value::String(value.to_owned()));
        Ok(())
    })
}

/// Sets configuration keys from a JSON object: nested (`{"pitaya": {"cluster": ...}}`),
/// dotted (`{"pitaya.cluster.sd.etcd.prefix": "x/"}`) or both. Leaves keep their JSON
/// type; strings are read as by `pitaya_builder_set`.
///
/// Returns NULL, or an error when `json` is not a JSON object.
///
/// # Safety
/// `builder` is a live builder; `json` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_builder_config_json(
    builder: *mut PitayaBuilder,
    json: *const c_char,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        let (b, json) = unsafe { (builder_mut(builder)?, str_arg(json, "json")?) };
        let value: Value = serde_json::from_str(json)
            .map_err(|e| Error::bad_request(format!("configuration JSON: {e}")))?;
        if !value.is_object() {
            return Err(Error::bad_request("configuration JSON: not an object"));
        }
        let mut leaves = Vec::new();
        flatten(String::new(), value, &mut leaves);
        for (key, value) in leaves {
            set_key(b, &key, value);
        }
        Ok(())
    })
}

fn set_key(b: &mut PitayaBuilder, key: &str, value: Value) {
    let loader = std::mem::take(&mut b.loader);
    b.loader = loader.set(key, value);
}

/// The leaves of `value` under dotted keys.
fn flatten(prefix: String, value: Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k } else { format!("{prefix}.{k}") };
                flatten(key, v, out);
            }
        }
        leaf => out.push((prefix, leaf)),
    }
}

/// Adds an entry to this server's discovery metadata (what other servers read in etcd,
/// e.g. `grpcHost`).
///
/// # Safety
/// `builder` is a live builder; `key` and `value` are NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_builder_metadata(
    builder: *mut PitayaBuilder,
    key: *const c_char,
    value: *const c_char,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        let (b, key, value) =
            unsafe { (builder_mut(builder)?, str_arg(key, "key")?, str_arg(value, "value")?) };
        b.metadata.push((key.to_owned(), value.to_owned()));
        Ok(())
    })
}

/// Chooses the cluster transport (default `PITAYA_TRANSPORT_ETCD_NATS`).
///
/// # Safety
/// `builder` is a live builder.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_builder_transport(
    builder: *mut PitayaBuilder,
    transport: PitayaTransport,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        unsafe { builder_mut(builder)? }.transport = transport;
        Ok(())
    })
}

/// Adds a TCP acceptor on `addr` (`host:port`; port 0 picks a free port, see
/// `pitaya_server_client_addr`). Frontends only.
///
/// # Safety
/// `builder` is a live builder; `addr` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_builder_tcp(
    builder: *mut PitayaBuilder,
    addr: *const c_char,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        let (b, addr) = unsafe { (builder_mut(builder)?, str_arg(addr, "addr")?) };
        b.acceptors.push((false, addr.to_owned()));
        Ok(())
    })
}

/// Adds a WebSocket acceptor on `addr`. Frontends only.
///
/// # Safety
/// `builder` is a live builder; `addr` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_builder_ws(
    builder: *mut PitayaBuilder,
    addr: *const c_char,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        let (b, addr) = unsafe { (builder_mut(builder)?, str_arg(addr, "addr")?) };
        b.acceptors.push((true, addr.to_owned()));
        Ok(())
    })
}

/// Registers the handler `component.method` for clients (`PITAYA_KIND_REQUEST` or
/// `PITAYA_KIND_NOTIFY`); clients and frontends reach it as
/// `serverType.component.method`. Duplicates are reported by `pitaya_start`.
///
/// `user_data` is passed to every call of `callback`, from the library's callback
/// threads: it must stay valid until `pitaya_shutdown` has returned, and be safe to
/// use from several threads at once.
///
/// # Safety
/// `builder` is a live builder; `component` and `method` are NUL-terminated strings;
/// `callback` follows the contract of `PitayaHandlerFn`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_builder_handler(
    builder: *mut PitayaBuilder,
    component: *const c_char,
    method: *const c_char,
    kind: PitayaKind,
    callback: PitayaHandlerFn,
    user_data: *mut c_void,
) -> *mut crate::PitayaError {
    guard_err(|| {
        if kind == PitayaKind::Remote {
            return Err(Error::bad_request("handler kind: use pitaya_builder_remote for remotes"));
        }
        // SAFETY: forwarded from the caller.
        unsafe { register(builder, component, method, kind, callback, user_data) }
    })
}

/// Registers the remote `component.method`, which other servers call by user RPC as
/// `serverType.component.method` (arguments and replies are protobuf bytes for Go and
/// Rust peers, passed through unchanged). `user_data` as for `pitaya_builder_handler`.
///
/// # Safety
/// As `pitaya_builder_handler`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_builder_remote(
    builder: *mut PitayaBuilder,
    component: *const c_char,
    method: *const c_char,
    callback: PitayaHandlerFn,
    user_data: *mut c_void,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        unsafe { register(builder, component, method, PitayaKind::Remote, callback, user_data) }
    })
}

/// # Safety
/// As `pitaya_builder_handler`.
unsafe fn register(
    builder: *mut PitayaBuilder,
    component: *const c_char,
    method: *const c_char,
    kind: PitayaKind,
    callback: PitayaHandlerFn,
    user_data: *mut c_void,
) -> Result<(), Error> {
    // SAFETY: forwarded from the caller.
    let (b, component, method) = unsafe {
        (
            builder_mut(builder)?,
            str_arg(component, "component")?,
            opt_str_arg(method, "method")?.ok_or_else(|| Error::bad_request("method is NULL"))?,
        )
    };
    let function = callback.ok_or_else(|| Error::bad_request("callback is NULL"))?;
    if component.is_empty() || method.is_empty() || component.contains('.') || method.contains('.')
    {
        return Err(Error::bad_request("component and method: non-empty, without dots"));
    }
    b.handlers.push(Registration {
        component: component.to_owned(),
        method: method.to_owned(),
        kind,
        callback: Arc::new(Callback::new(function, user_data)),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_and_dotted_json_give_the_same_keys() {
        let mut out = Vec::new();
        let v = serde_json::json!({"pitaya": {"cluster": {"sd": {"etcd": {"prefix": "x/"}}}},
                                   "pitaya.heartbeat.interval": "10s"});
        flatten(String::new(), v, &mut out);
        out.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            out,
            [
                ("pitaya.cluster.sd.etcd.prefix".to_owned(), Value::from("x/")),
                ("pitaya.heartbeat.interval".to_owned(), Value::from("10s")),
            ]
        );
    }

    #[test]
    fn configuration_keys_reach_the_loaded_configuration() {
        let b = c"room".as_ptr();
        // SAFETY: valid C strings; the builder is freed at the end.
        unsafe {
            let builder = pitaya_builder_new(b, false);
            assert!(!builder.is_null());
            assert!(
                pitaya_builder_set(builder, c"pitaya.heartbeat.interval".as_ptr(), c"7s".as_ptr())
                    .is_null()
            );
            let json = cr#"{"pitaya": {"cluster": {"sd": {"etcd": {"prefix": "ffi/"}}}}}"#;
            assert!(pitaya_builder_config_json(builder, json.as_ptr()).is_null());
            let e = pitaya_builder_config_json(builder, c"[1]".as_ptr());
            assert!(!e.is_null());
            crate::pitaya_error_free(e);
            let config = (*builder).loader.load().unwrap();
            assert_eq!(config.heartbeat.interval, std::time::Duration::from_secs(7));
            assert_eq!(config.cluster.sd.etcd.prefix, "ffi/");
            pitaya_builder_free(builder);
            assert!(pitaya_builder_new(std::ptr::null(), true).is_null());
            assert!(pitaya_builder_new(c"".as_ptr(), true).is_null());
        }
    }
}
