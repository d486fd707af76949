//! CPU time of processes over exactly the measurement window: read from `/proc` when the
//! window opens and when it closes, so that neither connection set-up nor the warm-up
//! nor the drain after the window is counted.

use std::time::Instant;

use anyhow::{Context, Result, ensure};

/// User plus system CPU seconds of `pid` (all its threads), or of this process when
/// `None`, from `/proc/<pid>/stat`.
pub(crate) fn cpu_seconds(pid: Option<u32>) -> Result<f64> {
    let path = pid.map_or_else(|| "/proc/self/stat".to_owned(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the `(comm)`, which may itself hold spaces: state is the first, utime
    // and stime (fields 14 and 15 of proc(5)) the 12th and 13th.
    let rest =
        stat.rsplit_once(')').map(|(_, r)| r).with_context(|| format!("malformed {path}"))?;
    let ticks: Vec<f64> =
        rest.split_whitespace().skip(11).take(2).map_while(|f| f.parse().ok()).collect();
    ensure!(ticks.len() == 2, "no utime and stime in {path}");
    // proc(5) counts in USER_HZ, which is 100 on every Linux ABI.
    Ok(ticks.iter().sum::<f64>() / 100.0)
}

/// Parses `--cpu-pids`: a comma-separated list of process ids.
pub(crate) fn parse_pids(text: &str) -> Result<Vec<u32>> {
    text.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.trim().parse().with_context(|| format!("process id {p:?} in --cpu-pids")))
        .collect()
}

/// Spawns a task that reads the CPU time of each of `pids` at `start` and at `end`, and
/// returns the handle whose output is each one's CPU seconds in between (`None` for a
/// process that could not be read, e.g. one that exited).
pub(crate) fn spawn_window(
    pids: Vec<u32>,
    start: Instant,
    end: Instant,
) -> tokio::task::JoinHandle<Vec<Option<f64>>> {
    tokio::spawn(async move {
        tokio::time::sleep_until(start.into()).await;
        let before: Vec<Option<f64>> = pids.iter().map(|&p| cpu_seconds(Some(p)).ok()).collect();
        tokio::time::sleep_until(end.into()).await;
        pids.iter().zip(before).map(|(&p, b)| Some(cpu_seconds(Some(p)).ok()? - b?)).collect()
    })
}
