//! Callgrind driver: runs one codec case N times so that `cargo xtask bench` can count the
//! instructions of one operation, deterministically, as `(Ir(N) - Ir(0)) / N`.
//!
//! - `instructions <case> <N>`: builds the case's fixture, then runs the operation N times.
//!   N = 0 measures process start-up plus the fixture, which the xtask subtracts.
//! - `instructions --list`: one line per case, tab-separated: name, the N to use, the
//!   reference case for the "vs small plain" ratio, and the uncompressed counterpart of a
//!   zlib case (`-` when there is none).
//! - anything else (`cargo bench` passes `--bench`, `cargo test` passes nothing): runs
//!   every case a few times and checks its round trip, so both commands stay green
//!   without valgrind.
//!
//! Cases are defined in `common/mod.rs`, shared with the Criterion bench `codec.rs`.

mod common;

use std::io::Write;
use std::process::ExitCode;

use common::{Case, Config, Fixture, Size};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cases = common::cases();
    let result = match args.as_slice() {
        [flag] if flag == "--list" => list(&cases),
        [name, n] => match (cases.iter().find(|c| c.to_string() == *name), n.parse()) {
            (Some(&case), Ok(n)) => {
                measure(case, n);
                Ok(())
            }
            _ => smoke(&cases),
        },
        _ => smoke(&cases),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("instructions: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The hot loop that callgrind counts. The fixture is built even for N = 0, so that the
/// subtraction removes its cost along with start-up.
fn measure(case: Case, n: u64) {
    let mut fixture = Fixture::new(case);
    for _ in 0..n {
        fixture.run(case.op);
    }
}

/// Iterations per case: enough that start-up noise divided by N vanishes, few enough that
/// callgrind (about 50 times slower than native) gets through every case in seconds. A
/// 64 KiB deflate or inflate costs millions of instructions, so a handful of runs suffice.
fn iterations(case: Case) -> u64 {
    match (case.size, case.config.zlib) {
        (Size::Large, true) => 10,
        _ => 1000,
    }
}

fn list(cases: &[Case]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for &case in cases {
        let plain = Config { dict: false, zlib: false };
        let base = Case { size: Size::Small, config: plain, ..case };
        let uncompressed = if case.config.zlib {
            Case { config: Config { zlib: false, ..case.config }, ..case }.to_string()
        } else {
            "-".to_owned()
        };
        writeln!(out, "{case}\t{}\t{base}\t{uncompressed}", iterations(case))?;
    }
    out.flush()
}

fn smoke(cases: &[Case]) -> std::io::Result<()> {
    for &case in cases {
        let mut fixture = Fixture::new(case);
        fixture.check();
        for _ in 0..3 {
            fixture.run(case.op);
        }
    }
    eprintln!(
        "instructions: {} cases ran (smoke check only); `cargo xtask bench --callgrind-only` \
         counts their instructions",
        cases.len()
    );
    Ok(())
}
