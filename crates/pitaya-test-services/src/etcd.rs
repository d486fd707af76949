//! etcd (v3 API): one member, client and peer ports on loopback, data in the temp dir.

use std::ffi::OsString;
use std::path::Path;

use crate::instance::{Instance, Kind, data_dir};
use crate::probe;

/// A running single-member etcd (v3 API) on 127.0.0.1, with its client and peer ports
/// free when it started and its data dir inside a temp dir that is removed on drop. The
/// process is SIGKILLed (then waited for) on drop.
///
/// Ready means `/health` on the client port reports `"health":"true"` (a leader is elected)
/// and the member list names this instance.
#[derive(Debug)]
pub struct Etcd {
    instance: Instance<EtcdKind>,
}

impl Etcd {
    /// Starts a private etcd on free ports and waits until it is healthy.
    ///
    /// # Panics
    ///
    /// If etcd is not installed (run `cargo xtask test`, which installs it), or if it is not
    /// healthy within 20 s: the message quotes the end of its log.
    pub fn start() -> Etcd {
        Etcd { instance: Instance::start() }
    }

    /// `127.0.0.1:PORT`, the client endpoint without a scheme, as
    /// `pitaya.cluster.sd.etcd.endpoints` is written; unchanged by [`Etcd::stop`] and
    /// [`Etcd::restart`].
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.instance.kind().client_port)
    }

    /// SIGKILLs etcd and waits for it to exit; its data dir stays. Nothing happens if it
    /// is already stopped.
    pub fn stop(&mut self) {
        self.instance.stop();
    }

    /// Starts etcd again on the same ports with the same data dir (stopping it first if it
    /// runs), so keys written before survive; leases keep running from their remaining TTL.
    /// Waits until it is healthy.
    ///
    /// # Panics
    ///
    /// If it is not healthy within 20 s: the message quotes the end of its log.
    pub fn restart(&mut self) {
        self.instance.restart();
    }
}

#[derive(Debug)]
struct EtcdKind {
    client_port: u16,
    peer_port: u16,
    name: String,
}

impl Kind for EtcdKind {
    const PROGRAM: &'static str = "etcd";

    fn fresh(name: String) -> EtcdKind {
        let client_port = crate::free_port();
        let mut peer_port = crate::free_port();
        while peer_port == client_port {
            peer_port = crate::free_port();
        }
        EtcdKind { client_port, peer_port, name }
    }

    fn args(&self, dir: &Path) -> Vec<OsString> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let cluster = format!("{}={peer}", self.name);
        let mut args: Vec<OsString> = [
            ("--name", self.name.as_str()),
            ("--listen-client-urls", &client),
            ("--advertise-client-urls", &client),
            ("--listen-peer-urls", &peer),
            ("--initial-advertise-peer-urls", &peer),
            ("--initial-cluster", &cluster),
            // capnslog, 3.4's default, prints a deprecation warning at every start.
            ("--logger", "zap"),
            ("--log-outputs", "stderr"),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [OsString::from(flag), OsString::from(value)])
        .collect();
        // 3.4 has no --unsafe-no-fsync (3.5 does); on a normal disk a put still takes ~15 ms.
        args.push("--data-dir".into());
        args.push(data_dir(dir).into());
        args
    }

    fn is_ready(&self, _pid: u32) -> bool {
        let own_name = format!("\"name\":\"{}\"", self.name);
        let is_member = probe::http(self.client_port, "POST", "/v3/cluster/member/list", "{}")
            .is_some_and(|reply| reply.contains(&own_name));
        is_member
            && probe::http(self.client_port, "GET", "/health", "")
                .is_some_and(|reply| reply.contains("\"health\":\"true\""))
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{} (peer port {})", self.client_port, self.peer_port)
    }
}
