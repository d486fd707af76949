//! One service process: program lookup, temp dir, log file, and the watchdog it runs under.

use std::ffi::OsString;
use std::fmt;
use std::fs::OpenOptions;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use tempfile::TempDir;

/// Directories searched after `PATH`: Debian installs nats-server in /usr/sbin, which is
/// not on a non-root user's `PATH`.
const EXTRA_DIRS: [&str; 3] = ["/usr/sbin", "/usr/local/sbin", "/sbin"];

/// How many lines of the log a panic message quotes.
const LOG_TAIL_LINES: usize = 40;

/// The shell that runs every service. It forks a watchdog, then `exec`s the service, so the
/// service keeps the pid of the `Child` we hold and `Child::kill` reaches it directly.
/// The watchdog checks every 0.5 s that the parent (the test process, `$1`) is still alive;
/// once it is gone, it SIGKILLs the service and removes the instance dir (`$2`). It exits
/// quietly as soon as the service is gone, so a stopped service's watchdog never kills a
/// later process that reused the pid of the parent or of the service.
const WATCHDOG: &str = r#"
parent=$1
dir=$2
shift 2
service=$$
(
    while kill -0 "$service" 2>/dev/null; do
        if ! kill -0 "$parent" 2>/dev/null; then
            kill -9 "$service" 2>/dev/null
            sleep 0.2
            rm -rf "$dir"
            exit 0
        fi
        sleep 0.5
    done
) </dev/null &
exec "$@"
"#;

/// A service program with its temp dir; at most one process of it runs at a time.
pub(crate) struct Process {
    program: &'static str,
    path: PathBuf,
    dir: TempDir,
    child: Option<Child>,
}

impl Process {
    /// Finds `program` and creates the instance's temp dir.
    ///
    /// # Panics
    ///
    /// If the program is not installed, or the temp dir cannot be created.
    pub(crate) fn new(program: &'static str) -> Process {
        let path = find_program(program).unwrap_or_else(|| {
            panic!(
                "`{program}` is not installed (looked on PATH and in {}): run `cargo xtask test`, \
                 which installs it",
                EXTRA_DIRS.join(", ")
            )
        });
        let dir = tempfile::Builder::new()
            .prefix(&format!("pitaya-test-{program}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for {program}: {e}"));
        Process { program, path, dir, child: None }
    }

    /// The program's name, as given to [`Process::new`].
    pub(crate) fn program(&self) -> &'static str {
        self.program
    }

    /// The instance's temp dir: holds the log file and any data dir.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the program with `args` under the watchdog, in the instance dir, with stdout
    /// and stderr appended to the log file. A process still running is stopped first.
    ///
    /// # Panics
    ///
    /// If the log file cannot be opened or `/bin/sh` cannot be started.
    pub(crate) fn spawn(&mut self, args: &[OsString]) -> u32 {
        self.stop();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .and_then(|file| Ok((file.try_clone()?, file)))
            .unwrap_or_else(|e| panic!("cannot open the log file of {}: {e}", self.program));
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("pitaya-test-watchdog")
            .arg(std::process::id().to_string())
            .arg(self.dir.path())
            .arg(&self.path)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.0)
            .stderr(log.1)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} through /bin/sh: {e}", self.program));
        let pid = child.id();
        self.child = Some(child);
        pid
    }

    /// `Some(status)` once the process has exited; `None` while it runs or if none was
    /// started.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|child| child.try_wait().ok().flatten())
    }

    /// SIGKILLs the process and waits for it; nothing happens if none runs.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Both fail only when the process was already reaped, which is the goal.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last lines the service wrote, for panic messages.
    pub(crate) fn log_tail(&self) -> String {
        let path = self.log_path();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines.get(lines.len().saturating_sub(LOG_TAIL_LINES)..).unwrap_or(&[]);
                format!("last lines of {}:\n{}", path.display(), tail.join("\n"))
            }
            Err(e) => format!("(cannot read {}: {e})", path.display()),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.program))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("program", &self.path)
            .field("pid", &self.child.as_ref().map(Child::id))
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// The first executable file named `program` on `PATH`, then in [`EXTRA_DIRS`].
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_but_not_a_made_up_program() {
        assert!(find_program("sh").is_some());
        assert_eq!(find_program("pitaya-no-such-program"), None);
    }

    #[test]
    fn a_missing_program_panics_with_the_fix() {
        let panic = std::panic::catch_unwind(|| Process::new("pitaya-no-such-program"))
            .expect_err("no such program");
        let message = panic.downcast_ref::<String>().expect("a formatted message");
        assert!(message.contains("run `cargo xtask test`, which installs it"), "{message}");
    }

    #[test]
    fn stop_kills_the_service_and_keeps_the_log() {
        let mut process = Process::new("sh");
        let args = ["-c", "echo started; exec sleep 60"].map(OsString::from);
        process.spawn(&args);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !process.log_tail().contains("started") {
            assert!(std::time::Instant::now() < deadline, "{}", process.log_tail());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(process.exited(), None);
        process.stop();
        assert_eq!(process.exited(), None, "a stopped process is forgotten");
        assert!(process.log_tail().contains("started"), "{}", process.log_tail());
    }
}
