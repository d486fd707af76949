//! Real nats-server, etcd and redis-server on loopback, for integration tests. No mocks.
//!
//! **Layer:** foundation (the table in `xtask/src/layers.rs`): may depend on no other
//! workspace crate.
//!
//! ```no_run
//! // A private instance, for tests that stop or restart it:
//! let mut nats = pitaya_test_services::Nats::start();
//! let url = nats.url(); // "nats://127.0.0.1:PORT"
//! nats.restart(); // same port, a fresh process
//! drop(nats); // SIGKILL, then wait
//!
//! // A shared one, for tests that only need a server to talk to:
//! let endpoint = pitaya_test_services::shared_etcd_endpoint(); // "127.0.0.1:PORT"
//! ```
//!
//! Layout:
//!
//! | Module | What it holds |
//! |---|---|
//! | `nats`, `etcd`, `redis` | one service each: its command line and its readiness probe |
//! | `shared` | the per-process instances behind `shared_*`, or the addresses `cargo xtask test` exports |
//! | `instance` | the start/stop/restart logic common to the three, with bounded waits |
//! | `process` | one service process: program lookup, log file, temp dir, watchdog |
//! | `probe` | a request/reply exchange over loopback TCP, used by the readiness probes |
//!
//! Contracts common to every service:
//!
//! - The programs must be installed (`cargo xtask test` installs them with apt-get). A
//!   missing program is a panic that says so.
//! - `start` returns only once the service answers its protocol on its own port (the probe
//!   checks the instance's identity, so another process that took the port does not pass),
//!   and panics with the tail of the service's log if that takes more than 20 s.
//! - The service's stdout and stderr go to a log file in the instance's temp dir, never to
//!   a pipe, so a chatty service never blocks.
//! - Every process runs under a shell watchdog that SIGKILLs it and removes its temp dir
//!   within about half a second once the process that started it is gone: a test that
//!   panics, aborts or exits without running destructors leaves nothing behind.

mod etcd;
mod instance;
mod nats;
mod probe;
mod process;
mod redis;
mod shared;

pub use etcd::Etcd;
pub use nats::Nats;
pub use redis::Redis;
pub use shared::{
    ETCD_ENDPOINTS_ENV, NATS_URL_ENV, REDIS_URL_ENV, shared_etcd_endpoint, shared_nats_url,
    shared_redis_url,
};

/// A TCP port on 127.0.0.1 that was free a moment ago: binds `127.0.0.1:0`, reads the
/// port the kernel chose and closes the socket.
///
/// Another process may take the port before the caller binds it; `start` of every service
/// retries with fresh ports when its process exits early for that reason.
///
/// # Panics
///
/// If binding a loopback socket fails, which means the machine has no usable loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("cannot bind a free port on 127.0.0.1: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_can_be_bound_again() {
        let port = free_port();
        assert_ne!(port, 0);
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
    }
}
