//! nats-server: core NATS on one loopback port, no JetStream, no storage.

use std::ffi::OsString;
use std::path::Path;

use crate::instance::{Instance, Kind};
use crate::probe;

/// A running nats-server on `127.0.0.1:<free port>`, SIGKILLed (then waited for) on drop.
///
/// Ready means a client connection got an `INFO` line that carries this instance's server
/// name. Only core NATS runs (no JetStream), so a restart starts from an empty state:
/// subscriptions are gone and clients must reconnect.
#[derive(Debug)]
pub struct Nats {
    instance: Instance<NatsKind>,
}

impl Nats {
    /// Starts a private nats-server on a free port and waits until it answers.
    ///
    /// # Panics
    ///
    /// If nats-server is not installed (run `cargo xtask test`, which installs it), or if it
    /// does not answer within 20 s: the message quotes the end of its log.
    pub fn start() -> Nats {
        Nats { instance: Instance::start() }
    }

    /// `nats://127.0.0.1:PORT`; unchanged by [`Nats::stop`] and [`Nats::restart`].
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port())
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.instance.kind().port
    }

    /// SIGKILLs the server and waits for it to exit; connections drop with no goodbye.
    /// Nothing happens if it is already stopped.
    pub fn stop(&mut self) {
        self.instance.stop();
    }

    /// Starts the server again on the same port (stopping it first if it runs) and waits
    /// until it answers.
    ///
    /// # Panics
    ///
    /// If it does not answer within 20 s: the message quotes the end of its log.
    pub fn restart(&mut self) {
        self.instance.restart();
    }
}

#[derive(Debug)]
struct NatsKind {
    port: u16,
    name: String,
}

impl Kind for NatsKind {
    const PROGRAM: &'static str = "nats-server";

    fn fresh(name: String) -> NatsKind {
        NatsKind { port: crate::free_port(), name }
    }

    fn args(&self, _dir: &Path) -> Vec<OsString> {
        let port = self.port.to_string();
        ["-a", "127.0.0.1", "-p", &port, "--server_name", &self.name].map(OsString::from).into()
    }

    fn is_ready(&self, _pid: u32) -> bool {
        let Some(reply) = probe::exchange(self.port, b"", |r| probe::contains(r, b"\r\n")) else {
            return false;
        };
        let own_name = format!("\"server_name\":\"{}\"", self.name);
        reply.starts_with(b"INFO ") && probe::contains(&reply, own_name.as_bytes())
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
