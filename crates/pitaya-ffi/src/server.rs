//! [`PitayaServer`]: a started server, and what C does with it from any thread: RPC,
//! pushes and kicks by uid, groups, graceful shutdown.

use std::collections::BTreeMap;
use std::ffi::{CString, c_char};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use pitaya_core::{Context, Error};
use pitaya_handler::{Component, RemoteComponent, RemoteRequest, RouteInfo};
use pitaya_server::{AppHandle, Builder, RunningApp};
use pitaya_session::Session;
use tokio::runtime::{Handle, Runtime};

use crate::boundary::{
    PitayaBuffer, bytes_arg, c_string, guard, guard_err, json_list, opt_str_arg, str_arg, strs_arg,
    write_out,
};
use crate::builder::{PitayaBuilder, PitayaKind, PitayaTransport, Registration};
use crate::call::{Incoming, block_on, in_callback};

/// How long `pitaya_shutdown` waits for callbacks still running once the server has
/// drained.
const CALLBACK_GRACE: Duration = Duration::from_secs(5);

/// A running server. Made by `pitaya_start`; freed by `pitaya_shutdown`. Every function
/// taking a `const PitayaServer *` may be called from any thread, callbacks included,
/// until `pitaya_shutdown` is called; callbacks still running during the shutdown may
/// go on calling them (they fail once the server has stopped) until it returns.
pub struct PitayaServer {
    /// Read by callbacks while `pitaya_shutdown` drains, so never changed after start;
    /// once the runtime is gone, what is spawned on it is dropped and callers get an
    /// error.
    runtime_handle: Handle,
    handle: AppHandle,
    id: CString,
    client_addr: Option<CString>,
    /// Taken by `pitaya_shutdown`.
    running: Mutex<Option<(Runtime, RunningApp)>>,
}

impl PitayaServer {
    /// Runs `f` with the application handle on the server's runtime and waits for it.
    fn block<T: Send + 'static, F>(
        &self,
        f: impl FnOnce(AppHandle) -> F + Send + 'static,
    ) -> Result<T, Error>
    where
        F: std::future::Future<Output = Result<T, Error>> + Send + 'static,
    {
        let handle = self.handle.clone();
        block_on(&self.runtime_handle, async move { f(handle).await })
    }
}

/// The server behind `server`.
///
/// # Safety
/// `server` is NULL or a server from `pitaya_start` not yet shut down.
unsafe fn server_ref<'a>(server: *const PitayaServer) -> Result<&'a PitayaServer, Error> {
    // SAFETY: forwarded from the caller.
    unsafe { server.as_ref() }.ok_or_else(|| Error::bad_request("server is NULL"))
}

/// Runs `f` on a thread of its own: blocking on a runtime is not allowed on a thread
/// already inside one (a Rust caller's), and a fresh thread is inside none.
fn on_fresh_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Starts the server described by `builder` and consumes the builder (also on error).
/// Returns once the server serves: its discovery record is in etcd and its RPC
/// subscription is active (NATS) or its gRPC port listens, and its acceptors listen.
///
/// On success writes the server to `*out` (the caller owns it and must give it to
/// `pitaya_shutdown`) and returns NULL; otherwise returns the error (caller-owned),
/// e.g. a bad configuration value, etcd or NATS unreachable, a duplicate handler.
///
/// # Safety
/// `builder` is a builder from `pitaya_builder_new` not yet started or freed; `out` is
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_start(
    builder: *mut PitayaBuilder,
    out: *mut *mut PitayaServer,
) -> *mut crate::PitayaError {
    guard_err(|| {
        if builder.is_null() {
            return Err(Error::bad_request("builder is NULL"));
        }
        // SAFETY: made by Box::into_raw in `pitaya_builder_new`, given to us once.
        let builder = unsafe { Box::from_raw(builder) };
        if out.is_null() {
            return Err(Error::bad_request("out is NULL"));
        }
        let server = start(*builder)?;
        // SAFETY: `out` is non-NULL and writable, as the caller promises.
        unsafe { write_out(out, Box::into_raw(Box::new(server))) };
        Ok(())
    })
}

fn start(b: PitayaBuilder) -> Result<PitayaServer, Error> {
    let config = b.loader.load().map_err(|e| Error::unknown(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pitaya-ffi")
        .build()
        .map_err(|e| Error::internal(format!("starting the runtime: {e}")))?;
    let mut builder =
        Builder::new().server_type(&b.server_type).frontend(b.frontend).config(config);
    for (key, value) in b.metadata {
        builder = builder.metadata(key, value);
    }
    for (ws, addr) in b.acceptors {
        builder = if ws { builder.ws(addr) } else { builder.tcp(addr) };
    }
    builder = register_all(builder, &b.server_type, b.handlers);
    builder = match b.transport {
        PitayaTransport::EtcdNats => builder.etcd_nats_cluster(),
        PitayaTransport::EtcdGrpc => builder.etcd_grpc_cluster(),
    };
    let app = builder.build()?;
    let rt = runtime.handle().clone();
    let running = on_fresh_thread(move || rt.block_on(app.start()))?;
    let handle = running.handle().clone();
    let id = handle.server().map(|s| s.id.clone()).unwrap_or_default();
    let client_addr = running.local_addrs().first().map(|(_, a)| c_string(&a.to_string()));
    Ok(PitayaServer {
        runtime_handle: runtime.handle().clone(),
        handle,
        id: c_string(&id),
        client_addr,
        running: Mutex::new(Some((runtime, running))),
    })
}

/// Groups the registrations into components and remote components.
fn register_all(mut builder: Builder, server_type: &str, regs: Vec<Registration>) -> Builder {
    let mut components: BTreeMap<String, Component> = BTreeMap::new();
    let mut remotes: BTreeMap<String, RemoteComponent> = BTreeMap::new();
    for Registration { component, method, kind, callback } in regs {
        if kind == PitayaKind::Remote {
            let route = format!("{server_type}.{component}.{method}");
            let c = remotes.remove(&component).unwrap_or_else(|| RemoteComponent::new(&component));
            let c = c.remote_raw(&method, move |_req: RemoteRequest, body: Bytes| {
                let incoming = Incoming { kind, route: route.clone(), session: None, body };
                callback.clone().invoke(incoming)
            });
            remotes.insert(component, c);
            continue;
        }
        let c = components.remove(&component).unwrap_or_else(|| Component::new(&component));
        let c = if kind == PitayaKind::Request {
            c.handler(&method, move |s: Session, r: RouteInfo, body: Bytes| {
                let incoming =
                    Incoming { kind, route: r.route.to_string(), session: Some(s), body };
                callback.clone().invoke(incoming)
            })
        } else {
            c.handler(&method, move |s: Session, r: RouteInfo, body: Bytes| {
                let incoming =
                    Incoming { kind, route: r.route.to_string(), session: Some(s), body };
                let answer = callback.clone().invoke(incoming);
                async move {
                    if let Err(e) = answer.await {
                        tracing::warn!(code = e.code(), message = e.message(), "ffi notify failed");
                    }
                }
            })
        };
        components.insert(component, c);
    }
    for c in components.into_values() {
        builder = builder.component(c);
    }
    for c in remotes.into_values() {
        builder = builder.remote(c);
    }
    builder
}

/// Shuts `server` down gracefully and frees it: deregisters from etcd, answers the
/// requests and RPCs already received (their callbacks still run), closes the
/// connections, then waits up to 5 s for callbacks still running (one running longer
/// must not use the server afterwards: it is freed). Returns NULL, or an
/// error (caller-owned) without freeing anything when called from a callback, where it
/// would wait for itself. `server` may be NULL.
///
/// # Safety
/// `server` is NULL or a server from `pitaya_start` not yet shut down, that no other
/// thread uses from now on (except callbacks still running).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_shutdown(server: *mut PitayaServer) -> *mut crate::PitayaError {
    guard_err(|| {
        if server.is_null() {
            return Ok(());
        }
        if in_callback() {
            return Err(Error::bad_request("pitaya_shutdown called from a callback"));
        }
        // SAFETY: a live server; callbacks still running may read it too, which the
        // shared reference allows.
        let taken = unsafe { &*server }.running.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((runtime, app)) = taken {
            on_fresh_thread(move || {
                runtime.block_on(app.shutdown());
                runtime.shutdown_timeout(CALLBACK_GRACE);
            });
        }
        // SAFETY: made by Box::into_raw in `pitaya_start` and given back once; the
        // runtime is gone, so no callback of ours reads it any more (the header's
        // contract covers callbacks past the grace period).
        drop(unsafe { Box::from_raw(server) });
        Ok(())
    })
}

/// This server's id in the cluster (its etcd key's last part), valid until
/// `pitaya_shutdown`; `""` for NULL.
///
/// # Safety
/// `server` is NULL or a live server.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_server_id(server: *const PitayaServer) -> *const c_char {
    guard(c"".as_ptr(), || {
        // SAFETY: forwarded from the caller.
        unsafe { server_ref(server) }.map_or(c"".as_ptr(), |s| s.id.as_ptr())
    })
}

/// The address (`host:port`) of a frontend's first acceptor, valid until
/// `pitaya_shutdown`; NULL for a backend or NULL `server`.
///
/// # Safety
/// `server` is NULL or a live server.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_server_client_addr(server: *const PitayaServer) -> *const c_char {
    guard(std::ptr::null(), || {
        // SAFETY: forwarded from the caller.
        unsafe { server_ref(server) }
            .ok()
            .and_then(|s| s.client_addr.as_ref())
            .map_or(std::ptr::null(), |a| a.as_ptr())
    })
}

/// Calls the remote `route` (`serverType.component.method`) with the `len` bytes at
/// `data` (protobuf for Go and Rust remotes), on the server `server_id` or, when it is
/// NULL, on a server of the route's type (Go's `RPC` and `RPCTo`), blocking until the
/// answer. On success fills `*reply` (caller-owned, free with `pitaya_buffer_free`)
/// and returns NULL; otherwise returns the remote's error with its code and metadata,
/// or `PIT-408`/`PIT-500` for a timeout or no server of the type.
///
/// # Safety
/// `server` is a live server; `route` is a NUL-terminated string; `server_id` is NULL
/// or one; `data` is NULL or points to `len` bytes; `reply` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_rpc(
    server: *const PitayaServer,
    server_id: *const c_char,
    route: *const c_char,
    data: *const u8,
    len: usize,
    reply: *mut PitayaBuffer,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        let (s, id, route, data) = unsafe {
            (
                server_ref(server)?,
                opt_str_arg(server_id, "server_id")?.map(str::to_owned),
                str_arg(route, "route")?.to_owned(),
                Bytes::copy_from_slice(bytes_arg(data, len, "data")?),
            )
        };
        if reply.is_null() {
            return Err(Error::bad_request("reply is NULL"));
        }
        let answer = s.block(move |h| async move {
            let ctx = Context::for_request(&route);
            h.rpc_raw(&ctx, id.as_deref(), &route, Some(data)).await
        })?;
        // SAFETY: non-NULL and writable, as the caller promises.
        unsafe { write_out(reply, PitayaBuffer::from_vec(answer.to_vec())) };
        Ok(())
    })
}

/// Pushes the `len` bytes at `data` on `route` to the `n_uids` users `uids`, wherever
/// they are connected among frontends of `frontend_type` (Go's `SendPushToUsers`),
/// blocking until sent. When `failed` is not NULL it receives the uids that could not
/// be reached as a JSON array (caller-owned buffer).
///
/// # Safety
/// `server` is a live server; strings are NUL-terminated; `uids` points to `n_uids`
/// strings; `data` is NULL or points to `len` bytes; `failed` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_push_to_users(
    server: *const PitayaServer,
    frontend_type: *const c_char,
    route: *const c_char,
    data: *const u8,
    len: usize,
    uids: *const *const c_char,
    n_uids: usize,
    failed: *mut PitayaBuffer,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        let (s, front, route, data, uids) = unsafe {
            (
                server_ref(server)?,
                str_arg(frontend_type, "frontend_type")?.to_owned(),
                str_arg(route, "route")?.to_owned(),
                Bytes::copy_from_slice(bytes_arg(data, len, "data")?),
                strs_arg(uids, n_uids, "uids")?,
            )
        };
        let missed = s.block(move |h| async move {
            Ok(h.send_push_to_users(&route, data, &uids, &front).await)
        })?;
        // SAFETY: NULL or writable, as the caller promises.
        unsafe { write_out(failed, PitayaBuffer::from_vec(json_list(&missed))) };
        Ok(())
    })
}

/// Kicks the `n_uids` users `uids` from frontends of `frontend_type` (Go's
/// `SendKickToUsers`); `failed` as for `pitaya_push_to_users`.
///
/// # Safety
/// As `pitaya_push_to_users`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_kick_users(
    server: *const PitayaServer,
    frontend_type: *const c_char,
    uids: *const *const c_char,
    n_uids: usize,
    failed: *mut PitayaBuffer,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        let (s, front, uids) = unsafe {
            (
                server_ref(server)?,
                str_arg(frontend_type, "frontend_type")?.to_owned(),
                strs_arg(uids, n_uids, "uids")?,
            )
        };
        let missed =
            s.block(move |h| async move { Ok(h.send_kick_to_users(&uids, &front).await) })?;
        // SAFETY: NULL or writable, as the caller promises.
        unsafe { write_out(failed, PitayaBuffer::from_vec(json_list(&missed))) };
        Ok(())
    })
}

/// Runs a group operation on the server's group service (this server's memory groups).
///
/// # Safety
/// `server` is NULL or a live server; `name` is NULL or a NUL-terminated string.
unsafe fn group_op<T: Send + 'static>(
    server: *const PitayaServer,
    name: *const c_char,
    f: impl FnOnce(AppHandle, String) -> pitaya_core::BoxFuture<'static, Result<T, Error>>
    + Send
    + 'static,
) -> Result<T, Error> {
    // SAFETY: forwarded from the caller.
    let (s, name) = unsafe { (server_ref(server)?, str_arg(name, "group")?.to_owned()) };
    s.block(move |h| f(h, name))
}

/// Creates the group `name`; with `ttl_ms` > 0 it disappears when not renewed within
/// that time. Errors: the group exists.
///
/// # Safety
/// `server` is a live server; `name` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_group_create(
    server: *const PitayaServer,
    name: *const c_char,
    ttl_ms: u64,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        unsafe {
            group_op(server, name, move |h, name| {
                Box::pin(async move {
                    let groups = h.groups();
                    let done = if ttl_ms > 0 {
                        groups.create_with_ttl(&name, Duration::from_millis(ttl_ms)).await
                    } else {
                        groups.create(&name).await
                    };
                    done.map_err(Error::from)
                })
            })
        }
    })
}

/// Adds `uid` to the group `name`. Errors: no such group, already a member.
///
/// # Safety
/// `server` is a live server; `name` and `uid` are NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_group_add_member(
    server: *const PitayaServer,
    name: *const c_char,
    uid: *const c_char,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        let uid = unsafe { str_arg(uid, "uid")? }.to_owned();
        // SAFETY: forwarded from the caller.
        unsafe {
            group_op(server, name, move |h, name| {
                Box::pin(
                    async move { h.groups().add_member(&name, &uid).await.map_err(Error::from) },
                )
            })
        }
    })
}

/// Removes `uid` from the group `name`. Errors: no such group or member.
///
/// # Safety
/// As `pitaya_group_add_member`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_group_remove_member(
    server: *const PitayaServer,
    name: *const c_char,
    uid: *const c_char,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        let uid = unsafe { str_arg(uid, "uid")? }.to_owned();
        // SAFETY: forwarded from the caller.
        unsafe {
            group_op(server, name, move |h, name| {
                Box::pin(
                    async move { h.groups().remove_member(&name, &uid).await.map_err(Error::from) },
                )
            })
        }
    })
}

/// Deletes the group `name`. Errors: no such group.
///
/// # Safety
/// `server` is a live server; `name` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_group_delete(
    server: *const PitayaServer,
    name: *const c_char,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        unsafe {
            group_op(server, name, |h, name| {
                Box::pin(async move { h.groups().delete(&name).await.map_err(Error::from) })
            })
        }
    })
}

/// Fills `*members` (caller-owned) with the members of the group `name` as a JSON
/// array of uids. Errors: no such group.
///
/// # Safety
/// `server` is a live server; `name` is a NUL-terminated string; `members` is valid for
/// a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_group_members(
    server: *const PitayaServer,
    name: *const c_char,
    members: *mut PitayaBuffer,
) -> *mut crate::PitayaError {
    guard_err(|| {
        if members.is_null() {
            return Err(Error::bad_request("members is NULL"));
        }
        // SAFETY: forwarded from the caller.
        let list = unsafe {
            group_op(server, name, |h, name| {
                Box::pin(async move { h.groups().members(&name).await.map_err(Error::from) })
            })
        }?;
        // SAFETY: non-NULL and writable, as the caller promises.
        unsafe { write_out(members, PitayaBuffer::from_vec(json_list(&list))) };
        Ok(())
    })
}

/// Pushes the `len` bytes at `data` on `route` to every member of the group `name` on
/// frontends of `frontend_type` (Go's `GroupBroadcast`); `failed` as for
/// `pitaya_push_to_users`. Errors: no such group.
///
/// # Safety
/// `server` is a live server; strings are NUL-terminated; `data` is NULL or points to
/// `len` bytes; `failed` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_group_broadcast(
    server: *const PitayaServer,
    frontend_type: *const c_char,
    name: *const c_char,
    route: *const c_char,
    data: *const u8,
    len: usize,
    failed: *mut PitayaBuffer,
) -> *mut crate::PitayaError {
    guard_err(|| {
        // SAFETY: forwarded from the caller.
        let (front, route, data) = unsafe {
            (
                str_arg(frontend_type, "frontend_type")?.to_owned(),
                str_arg(route, "route")?.to_owned(),
                Bytes::copy_from_slice(bytes_arg(data, len, "data")?),
            )
        };
        // SAFETY: forwarded from the caller.
        let missed = unsafe {
            group_op(server, name, move |h, name| {
                Box::pin(async move { h.group_broadcast(&front, &name, &route, data).await })
            })
        }?;
        // SAFETY: NULL or writable, as the caller promises.
        unsafe { write_out(failed, PitayaBuffer::from_vec(json_list(&missed))) };
        Ok(())
    })
}
