//! `cargo xtask bench`: the Criterion benches, then callgrind instruction counts.
//!
//! Wall-clock figures move with the machine and its load; instruction counts do not, so
//! they are what to compare between commits. Each case of the `instructions` bench target
//! of pitaya-codec runs under callgrind twice, N times and 0 times; the difference divided
//! by N is the cost of one operation without process start-up or fixture setup. Ratios
//! against reference cases of the same run make the table readable at a glance.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Runs the Criterion benches (unless `callgrind_only`), then the callgrind section.
pub(crate) fn run(root: &Path, callgrind_only: bool) -> Result<()> {
    if !callgrind_only {
        super::cargo(&["bench", "-p", "pitaya-codec"])?;
    }
    callgrind(root)
}

/// One line of `instructions --list`.
struct Case {
    name: String,
    iterations: u64,
    /// The case the "vs small plain" column divides by.
    base: String,
    /// For a zlib case, the same case without zlib.
    uncompressed: Option<String>,
}

fn callgrind(root: &Path) -> Result<()> {
    let valgrind = find_in_path("valgrind").filter(|path| {
        Command::new(path).arg("--version").output().is_ok_and(|o| o.status.success())
    });
    let Some(valgrind) = valgrind else {
        eprintln!(
            "xtask: SKIPPING the callgrind instruction counts: valgrind is not installed \
             (install it, e.g. `apt-get install valgrind`, to get them)"
        );
        return Ok(());
    };
    let started = Instant::now();
    let bin = build_driver(root)?;
    let cases = list_cases(&bin)?;
    let out_dir = target_dir(root).join("callgrind");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;

    let mut per_op = Vec::with_capacity(cases.len());
    for case in &cases {
        let file = |n: u64| out_dir.join(format!("{}.{n}.out", case.name.replace(['/', '+'], "_")));
        let (zero, full) = (file(0), file(case.iterations));
        // The two runs are independent processes: running them side by side halves the
        // wait on a two-core machine and cannot change what callgrind counts.
        let baseline = spawn_callgrind(&valgrind, root, &bin, &case.name, 0, &zero)?;
        let measured = spawn_callgrind(&valgrind, root, &bin, &case.name, case.iterations, &full)?;
        // Wait for both before reporting a failure, so that no valgrind outlives xtask.
        let (baseline, measured) = (finish(baseline, &case.name), finish(measured, &case.name));
        baseline.and(measured)?;
        let (at_zero, at_n) = (total_instructions(&zero)?, total_instructions(&full)?);
        let Some(delta) = at_n.checked_sub(at_zero) else {
            bail!(
                "{}: {at_n} instructions with N = {} but {at_zero} with N = 0",
                case.name,
                case.iterations
            );
        };
        per_op.push(delta as f64 / case.iterations as f64);
    }

    let table = render(&cases, &per_op)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(table.as_bytes())?;
    stdout.flush()?;
    eprintln!(
        "xtask: callgrind done in {:.0?}; profiles are in {} (read them with callgrind_annotate)",
        started.elapsed(),
        out_dir.display()
    );
    Ok(())
}

/// Builds the `instructions` bench target in the bench profile (what `cargo bench` runs)
/// and returns its path, taken from Cargo's own report of the artifact rather than guessed
/// from the target directory layout.
fn build_driver(root: &Path) -> Result<PathBuf> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root)
        .args(["build", "--profile", "bench", "-p", "pitaya-codec", "--bench", "instructions"])
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit());
    eprintln!("xtask: running {cmd:?}");
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed with {}", out.status);
    }
    let stdout = String::from_utf8(out.stdout).context("cargo's JSON output is not UTF-8")?;
    for line in stdout.lines() {
        let is_driver = line.contains(r#""reason":"compiler-artifact""#)
            && line.contains(r#""name":"instructions""#);
        if let Some(path) = is_driver.then(|| json_string_field(line, "executable")).flatten() {
            return Ok(PathBuf::from(path?));
        }
    }
    bail!("cargo built no `instructions` executable (is the bench target still declared?)")
}

/// The string value of `"field":"..."` in one line of Cargo's compact JSON; `None` when the
/// field is absent or `null`. A full JSON parser would be a dependency for one field.
fn json_string_field(line: &str, field: &str) -> Option<Result<String>> {
    let start = line.find(&format!(r#""{field}":""#))? + field.len() + 4;
    let mut value = String::new();
    let mut chars = line.get(start..)?.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(Ok(value)),
            '\\' => match chars.next() {
                Some(e @ ('"' | '\\' | '/')) => value.push(e),
                other => {
                    return Some(Err(anyhow::anyhow!(
                        "unsupported escape \\{} in cargo's `{field}`",
                        other.unwrap_or(' ')
                    )));
                }
            },
            c => value.push(c),
        }
    }
    Some(Err(anyhow::anyhow!("unterminated `{field}` in cargo's JSON output")))
}

fn list_cases(bin: &Path) -> Result<Vec<Case>> {
    let out = Command::new(bin)
        .arg("--list")
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!("{} --list failed: {}", bin.display(), String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8(out.stdout).context("case list is not UTF-8")?;
    let cases = text
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let &[name, iterations, base, uncompressed] = fields.as_slice() else {
                bail!("malformed case line {line:?}: want name, N, base, uncompressed");
            };
            let iterations: u64 =
                iterations.parse().with_context(|| format!("iteration count in {line:?}"))?;
            if iterations == 0 {
                bail!("case {name} asks for 0 iterations");
            }
            Ok(Case {
                name: name.to_owned(),
                iterations,
                base: base.to_owned(),
                uncompressed: (uncompressed != "-").then(|| uncompressed.to_owned()),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if cases.is_empty() {
        bail!("{} --list printed no cases", bin.display());
    }
    Ok(cases)
}

/// Where `program` is on PATH: resolved here because the callgrind runs get an empty
/// environment, PATH included.
fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

fn target_dir(root: &Path) -> PathBuf {
    // A relative CARGO_TARGET_DIR is relative to the workspace root, where main() cds.
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn spawn_callgrind(
    valgrind: &Path,
    root: &Path,
    bin: &Path,
    case: &str,
    n: u64,
    out_file: &Path,
) -> Result<Child> {
    let mut cmd = Command::new(valgrind);
    // The client's environment is copied onto its stack, so its size shifts alignments
    // and with them the count: a mere `cd` in the calling shell (which sets OLDPWD) moved
    // totals by dozens of instructions. A fixed environment and directory make the counts
    // depend on the code alone.
    cmd.env_clear().current_dir(root);
    if let Some(lib) = std::env::var_os("VALGRIND_LIB") {
        cmd.env("VALGRIND_LIB", lib);
    }
    // glibc's memset and memcpy switch to `rep stosb`/`rep movsb` above a few KiB, and
    // callgrind counts each byte those move as one instruction: the clearing of zlib's
    // tables then made up 90% of a small compressed encode, and a 64 KiB copy counted ten
    // times its vector-loop cost. These thresholds keep glibc on its vector loops, whose
    // count tracks the time they take.
    cmd.env(
        "GLIBC_TUNABLES",
        "glibc.cpu.x86_rep_stosb_threshold=0x7fffffffffffffff:\
         glibc.cpu.x86_rep_movsb_threshold=0x7fffffffffffffff",
    )
    .arg("--tool=callgrind")
    .arg("--quiet")
    .arg(format!("--callgrind-out-file={}", out_file.display()))
    .arg(bin)
    .args([case, &n.to_string()])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    cmd.spawn().with_context(|| format!("starting {cmd:?}"))
}

fn finish(child: Child, case: &str) -> Result<()> {
    let out =
        child.wait_with_output().with_context(|| format!("waiting for valgrind on {case}"))?;
    if !out.status.success() {
        bail!(
            "valgrind on {case} failed with {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The `summary:` (or, from older valgrinds, `totals:`) line of a callgrind profile: every
/// instruction the process executed, since Ir is the only event collected.
fn total_instructions(file: &Path) -> Result<u64> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .or_else(|| text.lines().find_map(|l| l.strip_prefix("totals:")))
        .with_context(|| format!("no summary or totals line in {}", file.display()))?;
    let first = value.split_whitespace().next().unwrap_or_default();
    first.parse().with_context(|| format!("instruction total {first:?} in {}", file.display()))
}

fn render(cases: &[Case], per_op: &[f64]) -> Result<String> {
    let lookup =
        |name: &str| cases.iter().position(|c| c.name == name).and_then(|i| per_op.get(i).copied());
    let ratio = |value: f64, reference: Option<&str>| -> Result<String> {
        let Some(reference) = reference else {
            return Ok("-".to_owned());
        };
        let of = lookup(reference)
            .with_context(|| format!("reference case {reference} was not measured"))?;
        Ok(format!("{:.2}x", value / of))
    };
    let width = cases.iter().map(|c| c.name.len()).max().unwrap_or(0).max(4);
    let mut table = String::new();
    writeln!(
        table,
        "\ncallgrind instructions per operation = (Ir(N) - Ir(0)) / N\n\
         vs small plain: against <op>/small/plain; vs no zlib: against the same case without \
         zlib (both from this run)\n"
    )?;
    writeln!(
        table,
        "{:<width$}  {:>5}  {:>12}  {:>14}  {:>10}",
        "case", "N", "instr/op", "vs small plain", "vs no zlib"
    )?;
    for (case, &value) in cases.iter().zip(per_op) {
        writeln!(
            table,
            "{:<width$}  {:>5}  {:>12.0}  {:>14}  {:>10}",
            case.name,
            case.iterations,
            value,
            ratio(value, Some(&case.base))?,
            ratio(value, case.uncompressed.as_deref())?,
        )?;
    }
    Ok(table)
}
