//! Start, stop and restart with bounded waits, common to the three services.

use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::process::Process;

/// How long a service may take to answer after its process started.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How many fresh sets of ports `start` tries when the process exits before answering
/// (another process took a port between [`crate::free_port`] and the service's bind).
const START_ATTEMPTS: usize = 5;

/// Pause between readiness probes.
const POLL: Duration = Duration::from_millis(20);

/// What differs between services: the program, its ports and command line, its probe.
pub(crate) trait Kind {
    /// The program's file name.
    const PROGRAM: &'static str;

    /// A configuration on fresh free ports; `name` is unique in this machine.
    fn fresh(name: String) -> Self;

    /// The command line, given the instance's temp dir.
    fn args(&self, dir: &Path) -> Vec<OsString>;

    /// Whether *this* instance (process `pid`) answers on its port, as opposed to nothing,
    /// or another process that got the port.
    fn is_ready(&self, pid: u32) -> bool;

    /// Where it listens, for messages.
    fn address(&self) -> String;
}

/// A running (or stopped) service of kind `K`.
pub(crate) struct Instance<K> {
    kind: K,
    process: Process,
}

impl<K: Kind> Instance<K> {
    /// Starts the service on fresh ports and waits until it answers.
    ///
    /// # Panics
    ///
    /// If the program is missing, if it does not answer within [`READY_TIMEOUT`], or if it
    /// exits early [`START_ATTEMPTS`] times in a row; the message quotes its log.
    pub(crate) fn start() -> Instance<K> {
        let process = Process::new(K::PROGRAM);
        let mut instance = Instance { kind: K::fresh(unique_name()), process };
        for attempt in 1..=START_ATTEMPTS {
            match instance.launch() {
                Ok(()) => return instance,
                Err(_) if attempt < START_ATTEMPTS => {
                    // A fresh data dir too: etcd records its peer URL there on first start.
                    let _ = std::fs::remove_dir_all(data_dir(instance.process.dir()));
                    instance.kind = K::fresh(unique_name());
                }
                Err(exited) => panic!("{exited}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// The service's configuration (ports, name).
    pub(crate) fn kind(&self) -> &K {
        &self.kind
    }

    /// SIGKILLs the service and waits for it to exit. Nothing happens if it is stopped.
    pub(crate) fn stop(&mut self) {
        self.process.stop();
    }

    /// Stops the service if it runs, then starts it again with the same ports and data,
    /// and waits until it answers. The ports may still be held for a moment by the old
    /// process's sockets, so early exits are retried until [`READY_TIMEOUT`].
    ///
    /// # Panics
    ///
    /// If it does not answer within [`READY_TIMEOUT`]; the message quotes its log.
    pub(crate) fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(exited) if Instant::now() >= deadline => panic!("{exited}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Spawns the process and polls it until it answers, or exits: then the error says how,
    /// with its log.
    fn launch(&mut self) -> Result<(), String> {
        let args = self.kind.args(self.process.dir());
        let pid = self.process.spawn(&args);
        let started = Instant::now();
        loop {
            if let Some(status) = self.process.exited() {
                self.process.stop();
                return Err(format!(
                    "{} exited with {status} before answering on {}; {}",
                    K::PROGRAM,
                    self.kind.address(),
                    self.process.log_tail()
                ));
            }
            if self.kind.is_ready(pid) {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                self.process.stop();
                panic!(
                    "{} did not answer on {} within {READY_TIMEOUT:?}; {}",
                    K::PROGRAM,
                    self.kind.address(),
                    self.process.log_tail()
                );
            }
            std::thread::sleep(POLL);
        }
    }
}

impl<K: Kind> fmt::Debug for Instance<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(self.process.program())
            .field("address", &self.kind.address())
            .field("process", &self.process)
            .finish()
    }
}

/// The data dir services that store data use, inside the instance's temp dir.
pub(crate) fn data_dir(instance_dir: &Path) -> std::path::PathBuf {
    instance_dir.join("data")
}

/// A name no other instance on this machine has now: the pid and a counter.
fn unique_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("pitaya-test-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
