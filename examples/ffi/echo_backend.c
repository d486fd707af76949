/*
 * echo_backend: a Pitaya backend written in C on pitaya-ffi (crates/pitaya-ffi/include/pitaya.h).
 *
 *   target/ffi/echo_backend [--type room] [--nats nats://127.0.0.1:4222]
 *                           [--etcd 127.0.0.1:2379[,...]] [--sdprefix pitaya/]
 *                           [--frontend-type connector] [--verbose]
 *
 * Built by `cargo xtask build-ffi`. Serves, as server type TYPE (a backend):
 *   TYPE.room.echo      replies the request body unchanged (answered in the callback)
 *   TYPE.room.fail      error PIT-499 "fail" (a JSON client sees {"code":"PIT-499","msg":"fail"})
 *   TYPE.room.later     replies the body from another thread, after the callback returned
 *   TYPE.room.rpc       body "ROUTE\nARG": calls the remote ROUTE with ARG, replies its answer
 *   TYPE.room.bindpush  body UID: binds the session to UID, pushes "hello from C" on
 *                       route onPush to UID on frontends of --frontend-type, replies "ok"
 * Prints "all modules started!" on stderr once it serves; on SIGTERM or SIGINT it shuts
 * down gracefully (deregisters from etcd) and exits 0.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pitaya.h"

/* Set once pitaya_start has returned; a callback that runs before sees NULL. */
static _Atomic(PitayaServer *) g_server;
static const char *g_frontend_type = "connector";

static void print_error(const char *what, PitayaError *err) {
    fprintf(stderr, "echo_backend: %s: %s %s %s\n", what, err->code, err->message, err->metadata_json);
    pitaya_error_free(err);
}

/* Finishes a call with `err` (the library's or a remote's error), keeping its code,
 * message and metadata, and frees `err`. */
static void fail_with(PitayaCall *call, PitayaError *err) {
    PitayaError *e = pitaya_call_fail(call, err->code, err->message, err->metadata_json);
    pitaya_error_free(err);
    if (e) print_error("fail", e);
}

static void respond(PitayaCall *call, const uint8_t *data, size_t len) {
    PitayaError *e = pitaya_call_respond(call, data, len);
    if (e) print_error("respond", e);
}

static int32_t on_echo(void *user_data, const PitayaRequest *req, PitayaCall *call) {
    (void)user_data;
    respond(call, req->body, req->body_len);
    return 0;
}

static int32_t on_fail(void *user_data, const PitayaRequest *req, PitayaCall *call) {
    (void)user_data;
    (void)req;
    PitayaError *e = pitaya_call_fail(call, "PIT-499", "fail", NULL);
    if (e) print_error("fail", e);
    return 0;
}

struct later {
    PitayaCall *call;
    uint8_t *body;
    size_t len;
};

static void *answer_later(void *arg) {
    struct later *l = arg;
    struct timespec ten_ms = {0, 10 * 1000 * 1000};
    nanosleep(&ten_ms, NULL);
    respond(l->call, l->body, l->len);
    free(l->body);
    free(l);
    return NULL;
}

/* The request's pointers die when the callback returns: copy the body, keep the call. */
static int32_t on_later(void *user_data, const PitayaRequest *req, PitayaCall *call) {
    (void)user_data;
    struct later *l = malloc(sizeof *l);
    if (!l) return 1;
    l->call = call;
    l->len = req->body_len;
    l->body = malloc(req->body_len ? req->body_len : 1);
    if (!l->body) {
        free(l);
        return 1;
    }
    if (req->body_len) memcpy(l->body, req->body, req->body_len);
    pthread_t t;
    if (pthread_create(&t, NULL, answer_later, l) != 0) {
        free(l->body);
        free(l);
        return 1; /* the library answers PIT-500 */
    }
    pthread_detach(t);
    return 0;
}

static int32_t on_rpc(void *user_data, const PitayaRequest *req, PitayaCall *call) {
    (void)user_data;
    PitayaServer *server = atomic_load(&g_server);
    const uint8_t *nl = req->body_len ? memchr(req->body, '\n', req->body_len) : NULL;
    if (!server || !nl) {
        PitayaError *e = pitaya_call_fail(call, "PIT-400", "body: ROUTE\\nARG", NULL);
        if (e) print_error("fail", e);
        return 0;
    }
    size_t route_len = (size_t)(nl - req->body);
    char *route = malloc(route_len + 1);
    if (!route) return 1;
    memcpy(route, req->body, route_len);
    route[route_len] = '\0';
    PitayaBuffer reply = {0};
    PitayaError *err = pitaya_rpc(server, NULL, route, nl + 1, req->body_len - route_len - 1, &reply);
    free(route);
    if (err) {
        fail_with(call, err);
        return 0;
    }
    respond(call, reply.data, reply.len);
    pitaya_buffer_free(&reply);
    return 0;
}

static int32_t on_bindpush(void *user_data, const PitayaRequest *req, PitayaCall *call) {
    (void)user_data;
    PitayaServer *server = atomic_load(&g_server);
    char uid[128];
    if (!server || req->body_len == 0 || req->body_len >= sizeof uid) {
        PitayaError *e = pitaya_call_fail(call, "PIT-400", "body: a uid", NULL);
        if (e) print_error("fail", e);
        return 0;
    }
    memcpy(uid, req->body, req->body_len);
    uid[req->body_len] = '\0';
    PitayaError *err = pitaya_call_bind(call, uid);
    if (err) {
        fail_with(call, err);
        return 0;
    }
    static const char hello[] = "hello from C";
    const char *uids[] = {uid};
    PitayaBuffer failed = {0};
    err = pitaya_push_to_users(server, g_frontend_type, "onPush", (const uint8_t *)hello,
                               sizeof hello - 1, uids, 1, &failed);
    if (err) {
        fail_with(call, err);
        return 0;
    }
    int all_reached = failed.len == 2; /* "[]" */
    pitaya_buffer_free(&failed);
    if (!all_reached) {
        PitayaError *e = pitaya_call_fail(call, "PIT-500", "push not delivered", NULL);
        if (e) print_error("fail", e);
        return 0;
    }
    respond(call, (const uint8_t *)"ok", 2);
    return 0;
}

static void on_log(void *user_data, int32_t level, const char *target, const char *message) {
    (void)user_data;
    static const char *names[] = {"", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"};
    fprintf(stderr, "%s %s: %s\n", level >= 1 && level <= 5 ? names[level] : "?", target, message);
}

static int usage(const char *prog) {
    fprintf(stderr,
            "usage: %s [--type room] [--nats URL] [--etcd HOST:PORT[,...]] [--sdprefix pitaya/]\n"
            "          [--frontend-type connector] [--verbose]\n",
            prog);
    return 2;
}

/* Exits on an error: start-up has nothing to clean up that the OS does not. */
static void check(const char *what, PitayaError *err) {
    if (err) {
        print_error(what, err);
        exit(1);
    }
}

int main(int argc, char **argv) {
    const char *type = "room", *nats = "nats://127.0.0.1:4222", *etcd = "127.0.0.1:2379";
    const char *prefix = "pitaya/";
    int verbose = 0;
    for (int i = 1; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--verbose")) {
            verbose = 1;
            continue;
        }
        if (!next) return usage(argv[0]);
        if (!strcmp(argv[i], "--type")) type = next;
        else if (!strcmp(argv[i], "--nats")) nats = next;
        else if (!strcmp(argv[i], "--etcd")) etcd = next;
        else if (!strcmp(argv[i], "--sdprefix")) prefix = next;
        else if (!strcmp(argv[i], "--frontend-type")) g_frontend_type = next;
        else return usage(argv[0]);
        i++;
    }

    /* Before any library thread exists, so that they all inherit the mask and the
     * signals reach sigwait below. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    pitaya_set_log_callback(on_log, NULL, verbose ? 3 : 2);

    PitayaBuilder *b = pitaya_builder_new(type, false);
    if (!b) return usage(argv[0]);
    check("config", pitaya_builder_set(b, "pitaya.cluster.rpc.client.nats.connect", nats));
    check("config", pitaya_builder_set(b, "pitaya.cluster.rpc.server.nats.connect", nats));
    check("config", pitaya_builder_set(b, "pitaya.cluster.sd.etcd.endpoints", etcd));
    check("config", pitaya_builder_set(b, "pitaya.cluster.sd.etcd.prefix", prefix));
    check("handler", pitaya_builder_handler(b, "room", "echo", PITAYA_KIND_REQUEST, on_echo, NULL));
    check("handler", pitaya_builder_handler(b, "room", "fail", PITAYA_KIND_REQUEST, on_fail, NULL));
    check("handler", pitaya_builder_handler(b, "room", "later", PITAYA_KIND_REQUEST, on_later, NULL));
    check("handler", pitaya_builder_handler(b, "room", "rpc", PITAYA_KIND_REQUEST, on_rpc, NULL));
    check("handler", pitaya_builder_handler(b, "room", "bindpush", PITAYA_KIND_REQUEST, on_bindpush, NULL));

    PitayaServer *server = NULL;
    check("start", pitaya_start(b, &server));
    atomic_store(&g_server, server);
    fprintf(stderr, "echo_backend: server %s of type %s: all modules started!\n", pitaya_server_id(server), type);

    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "echo_backend: signal %d, shutting down\n", sig);
    atomic_store(&g_server, NULL);
    check("shutdown", pitaya_shutdown(server));
    fprintf(stderr, "echo_backend: stopped\n");
    return 0;
}
