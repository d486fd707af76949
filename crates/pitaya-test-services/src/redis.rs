//! redis-server: one loopback port, no persistence.

use std::ffi::OsString;
use std::path::Path;

use crate::instance::{Instance, Kind};
use crate::probe;

/// A running redis-server on `127.0.0.1:<free port>`, SIGKILLed (then waited for) on drop.
///
/// Ready means `PING` got `+PONG` and `INFO server` reports this instance's pid.
/// Persistence is off (`--save '' --appendonly no`), so a restart starts empty.
#[derive(Debug)]
pub struct Redis {
    instance: Instance<RedisKind>,
}

impl Redis {
    /// Starts a private redis-server on a free port and waits until it answers.
    ///
    /// # Panics
    ///
    /// If redis-server is not installed (run `cargo xtask test`, which installs it), or if
    /// it does not answer within 20 s: the message quotes the end of its log.
    pub fn start() -> Redis {
        Redis { instance: Instance::start() }
    }

    /// `redis://127.0.0.1:PORT`; unchanged by [`Redis::stop`] and [`Redis::restart`].
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.instance.kind().port
    }

    /// SIGKILLs the server and waits for it to exit. Nothing happens if it is already
    /// stopped.
    pub fn stop(&mut self) {
        self.instance.stop();
    }

    /// Starts the server again on the same port (stopping it first if it runs), empty, and
    /// waits until it answers.
    ///
    /// # Panics
    ///
    /// If it does not answer within 20 s: the message quotes the end of its log.
    pub fn restart(&mut self) {
        self.instance.restart();
    }
}

#[derive(Debug)]
struct RedisKind {
    port: u16,
}

impl Kind for RedisKind {
    const PROGRAM: &'static str = "redis-server";

    fn fresh(_name: String) -> RedisKind {
        RedisKind { port: crate::free_port() }
    }

    fn args(&self, dir: &Path) -> Vec<OsString> {
        let port = self.port.to_string();
        let mut args: Vec<OsString> =
            ["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
                .map(OsString::from)
                .into();
        args.push("--dir".into());
        args.push(dir.into());
        args
    }

    fn is_ready(&self, pid: u32) -> bool {
        let own_pid = format!("\r\nprocess_id:{pid}\r\n");
        let Some(reply) = probe::exchange(self.port, b"PING\r\nINFO server\r\n", |r| {
            probe::contains(r, own_pid.as_bytes())
        }) else {
            return false;
        };
        reply.starts_with(b"+PONG\r\n") && probe::contains(&reply, own_pid.as_bytes())
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
