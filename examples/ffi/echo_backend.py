#!/usr/bin/env python3
"""echo_backend.py: the C example's backend (examples/ffi/echo_backend.c) in Python, on
pitaya-ffi through ctypes (standard library only).

    python3 examples/ffi/echo_backend.py [--lib target/ffi/libpitaya_ffi.so] [--type room]
        [--nats nats://127.0.0.1:4222] [--etcd 127.0.0.1:2379[,...]] [--sdprefix pitaya/]

The library is --lib, else $PITAYA_FFI_LIB. Serves, as a backend of server type TYPE,
TYPE.room.echo (replies the body unchanged), TYPE.room.fail (error PIT-499 "fail") and
TYPE.room.later (replies the body from another thread). Prints "all modules started!"
on stderr once it serves; on SIGTERM or SIGINT it shuts down gracefully and exits 0.
The declarations below follow crates/pitaya-ffi/include/pitaya.h, the reference.
"""

import argparse
import ctypes
import os
import signal
import sys
import threading
from ctypes import POINTER, c_bool, c_char_p, c_int32, c_int64, c_size_t, c_uint64, c_void_p

KIND_REQUEST = 0


class PitayaError(ctypes.Structure):
    _fields_ = [("code", c_char_p), ("message", c_char_p), ("metadata_json", c_char_p)]


class PitayaRequest(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_int),
        ("route", c_char_p),
        ("session_id", c_int64),
        ("uid", c_char_p),
        ("frontend_id", c_char_p),
        ("session_data", c_void_p),
        ("session_data_len", c_size_t),
        ("body", c_void_p),
        ("body_len", c_size_t),
    ]


# int32_t (*)(void *user_data, const PitayaRequest *request, PitayaCall *call)
HANDLER = ctypes.CFUNCTYPE(c_int32, c_void_p, POINTER(PitayaRequest), c_void_p)
# void (*)(void *user_data, int32_t level, const char *target, const char *message)
LOG = ctypes.CFUNCTYPE(None, c_void_p, c_int32, c_char_p, c_char_p)


def load(path):
    lib = ctypes.CDLL(path)
    err = POINTER(PitayaError)
    sigs = {
        "pitaya_error_free": (None, [err]),
        "pitaya_builder_new": (c_void_p, [c_char_p, c_bool]),
        "pitaya_builder_set": (err, [c_void_p, c_char_p, c_char_p]),
        "pitaya_builder_handler": (err, [c_void_p, c_char_p, c_char_p, ctypes.c_int, HANDLER, c_void_p]),
        "pitaya_start": (err, [c_void_p, POINTER(c_void_p)]),
        "pitaya_shutdown": (err, [c_void_p]),
        "pitaya_server_id": (c_char_p, [c_void_p]),
        "pitaya_call_respond": (err, [c_void_p, c_void_p, c_size_t]),
        "pitaya_call_fail": (err, [c_void_p, c_char_p, c_char_p, c_char_p]),
        "pitaya_set_log_callback": (None, [LOG, c_void_p, c_int32]),
    }
    for name, (restype, argtypes) in sigs.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = restype, argtypes
    return lib


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", default=os.environ.get("PITAYA_FFI_LIB"))
    parser.add_argument("--type", default="room")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--etcd", default="127.0.0.1:2379")
    parser.add_argument("--sdprefix", default="pitaya/")
    args = parser.parse_args()
    if not args.lib:
        parser.error("give the library with --lib PATH or PITAYA_FFI_LIB")
    lib = load(args.lib)

    def check(what, err):
        if err:
            e = err.contents
            print(f"echo_backend.py: {what}: {e.code.decode()} {e.message.decode()}", file=sys.stderr)
            lib.pitaya_error_free(err)
            sys.exit(1)

    def report(what, err):
        if err:
            print(f"echo_backend.py: {what}: {err.contents.message.decode()}", file=sys.stderr)
            lib.pitaya_error_free(err)

    def body_of(request):
        r = request.contents
        return ctypes.string_at(r.body, r.body_len) if r.body_len else b""

    # Callbacks run on the library's threads; ctypes takes the GIL for them. An
    # exception escaping one would be printed and 0 returned, so each answers first.
    @HANDLER
    def echo(_user, request, call):
        body = body_of(request)
        report("respond", lib.pitaya_call_respond(call, body, len(body)))
        return 0

    @HANDLER
    def fail(_user, _request, call):
        report("fail", lib.pitaya_call_fail(call, b"PIT-499", b"fail", None))
        return 0

    @HANDLER
    def later(_user, request, call):
        body = body_of(request)  # the request dies when the callback returns

        def answer():
            report("respond", lib.pitaya_call_respond(call, body, len(body)))

        threading.Timer(0.01, answer).start()
        return 0

    @LOG
    def log(_user, level, target, message):
        print(f"{level} {target.decode()}: {message.decode()}", file=sys.stderr)

    # Before the library starts its threads, so that they inherit the mask and the
    # signals reach sigwait below.
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    lib.pitaya_set_log_callback(log, None, 2)

    b = lib.pitaya_builder_new(args.type.encode(), False)
    if not b:
        parser.error("bad --type")
    for key, value in [
        ("pitaya.cluster.rpc.client.nats.connect", args.nats),
        ("pitaya.cluster.rpc.server.nats.connect", args.nats),
        ("pitaya.cluster.sd.etcd.endpoints", args.etcd),
        ("pitaya.cluster.sd.etcd.prefix", args.sdprefix),
    ]:
        check("config", lib.pitaya_builder_set(b, key.encode(), value.encode()))
    for method, handler in [(b"echo", echo), (b"fail", fail), (b"later", later)]:
        check("handler", lib.pitaya_builder_handler(b, b"room", method, KIND_REQUEST, handler, None))

    server = c_void_p()
    check("start", lib.pitaya_start(b, ctypes.byref(server)))
    server_id = lib.pitaya_server_id(server).decode()
    print(f"echo_backend.py: server {server_id} of type {args.type}: all modules started!",
          file=sys.stderr, flush=True)

    sig = signal.sigwait(stop)
    print(f"echo_backend.py: signal {sig}, shutting down", file=sys.stderr, flush=True)
    check("shutdown", lib.pitaya_shutdown(server))
    print("echo_backend.py: stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
