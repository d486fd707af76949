//! Load generator for Pitaya frontends: pipelined requests, idle connections, broadcasts.
//!
//! ```sh
//! cargo run --release --example loadgen -- --addr 127.0.0.1:3250 --conns 4 --inflight 10
//! ```
//!
//! Modes, each ending with one JSON line on stdout (`cargo xtask bench` reads it):
//! - default: `--conns` connections (TCP, or WebSocket with `--ws`) each keep `--inflight`
//!   `room.echo` requests of `--payload` bytes in flight; after `--warmup` seconds, reports
//!   req/s and p50/p99/max latency over `--duration` seconds, and with `--cpu-pids` the
//!   CPU time (user + system) each of those processes used within exactly that window;
//! - `--idle N`: opens N handshaken TCP connections (spread over the `--sources`
//!   addresses), prints a line once all are open, then holds them for `--hold` seconds,
//!   answering the server's heartbeats with `--heartbeats`;
//! - `--broadcast M --window 32`: M members call `room.join`, one more connection sends
//!   `room.message` notifies of `--payload` bytes with at most `--window` of them not yet
//!   delivered to every member, and the members count their `onMessage` pushes: pushes/s
//!   over `--duration` seconds after `--warmup`, delivery latency (member receipt minus
//!   the sender's write), missing and duplicate pushes (see `src/loadgen/push_fanout.rs`);
//! - `push-fanout --addrs A,B --members 1000 --window 8 --seconds 4`: members spread over
//!   the frontends of the cluster `testing` example bind their own uids, one more client
//!   sends `game.testsvc.testsendtousers` to all of them with at most `--window` messages
//!   not yet delivered to every member, and the members' pushes/s are measured (see
//!   `src/loadgen/push_fanout.rs`);
//! - `zlib-levels --levels 1,6 --payloads 1024,4096`: deflated size and time of each zlib
//!   level on the request payloads, through the codec (see `src/loadgen/zlib_levels.rs`).
//!
//! It speaks the protocol through `pitaya-codec` directly (see `src/loadgen/wire.rs` for
//! why), and only to loopback addresses.

#![expect(clippy::print_stdout, reason = "the JSON result line on stdout is the interface")]

#[path = "src/loadgen/cpu.rs"]
mod cpu;
#[path = "src/loadgen/echo_load.rs"]
mod echo_load;
#[path = "src/loadgen/idle.rs"]
mod idle;
#[path = "src/loadgen/many.rs"]
mod many;
#[path = "src/loadgen/push_fanout.rs"]
mod push_fanout;
#[path = "src/loadgen/wire.rs"]
mod wire;
#[path = "src/loadgen/zlib_levels.rs"]
mod zlib_levels;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use serde_json::json;

/// Load generator for Pitaya frontends (loopback only).
#[derive(Debug, Parser)]
struct Args {
    /// Server address (TCP or WebSocket port).
    #[arg(long, default_value = "127.0.0.1:3250")]
    addr: SocketAddr,
    /// Speak WebSocket (path `/`) instead of plain TCP.
    #[arg(long)]
    ws: bool,
    /// Connections for the request mode.
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// Requests kept in flight on each connection.
    #[arg(long, default_value_t = 10)]
    inflight: usize,
    /// Request (or broadcast message) body size in bytes: JSON-like text, which zlib
    /// shrinks about as much as real game messages.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of load before the measurement starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Route of the request mode; the server must echo the body back.
    #[arg(long, default_value = "room.echo")]
    route: String,
    /// Idle mode: open this many handshaken TCP connections and hold them.
    #[arg(long, conflicts_with = "broadcast")]
    idle: Option<usize>,
    /// Seconds the idle mode holds its connections once all are open.
    #[arg(long, default_value_t = 3.0)]
    hold: f64,
    /// Idle mode: comma-separated loopback source addresses the connections are spread
    /// over (one source address reaches one server port from at most the ~28,000 ports of
    /// the ephemeral range).
    #[arg(long, value_delimiter = ',')]
    sources: Vec<IpAddr>,
    /// Idle mode: answer each server heartbeat with one, so that the server keeps the
    /// connections past two heartbeat intervals; reports heartbeats answered and
    /// connections still open at the end.
    #[arg(long, requires = "idle")]
    heartbeats: bool,
    /// Broadcast mode: this many members join group `room`.
    #[arg(long)]
    broadcast: Option<usize>,
    /// Broadcast mode: messages not yet delivered to every member, at most, before the
    /// sender waits.
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// Seconds allowed for opening connections, and for the broadcast pushes to arrive.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Request, broadcast and push-fanout modes: comma-separated process ids whose CPU
    /// time (user + system) within the measurement window is reported, as `window_cpu_s`
    /// in the same order (the fan-out modes add loadgen itself last).
    #[arg(long, default_value = "")]
    cpu_pids: String,
    /// Runtime worker threads; 1 runs everything on the main thread.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    mode: Option<Mode>,
}

/// Modes with arguments of their own.
#[derive(Debug, Subcommand)]
enum Mode {
    /// Pushes to many users across frontends of the cluster `testing` example.
    PushFanout(FanoutArgs),
    /// Deflated size and time of zlib levels on the request payloads (no server).
    ZlibLevels(LevelsArgs),
}

/// Arguments of `zlib-levels`.
#[derive(Debug, clap::Args)]
struct LevelsArgs {
    /// Comma-separated zlib levels (0 to 9).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 3, 4, 5, 6, 7, 8, 9])]
    levels: Vec<u32>,
    /// Comma-separated payload sizes, the request mode's text of `--payload`.
    #[arg(long, value_delimiter = ',', default_values_t = [1024, 4096])]
    payloads: Vec<usize>,
    /// Deflates per timed batch (0: sizes only).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    iterations: u64,
    /// Timed batches per level and payload; the fastest is reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    batches: u32,
}

/// Arguments of `push-fanout` (`--timeout` and `--threads` are the top-level ones).
#[derive(Debug, clap::Args)]
struct FanoutArgs {
    /// Comma-separated frontend addresses; members are spread evenly over them.
    #[arg(long)]
    addrs: String,
    /// Members, each bound to its own uid.
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Messages not yet delivered to every member, at most.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Seconds of sending before the measurement starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
}

/// Upper bounds that keep a typo from turning into an hour-long or machine-wide run.
const MAX_CONNS: usize = 60_000;
/// Idle connections: 100,000 spread over four source addresses, with room to spare.
const MAX_IDLE: usize = 200_000;
const MAX_INFLIGHT: usize = 10_000;
const MAX_SECONDS: f64 = 600.0;

fn main() -> Result<()> {
    pitaya_examples::init_tracing();
    let args = Args::parse();
    check(&args)?;
    // Thousands of sockets need more than the usual soft limit of 1,024 descriptors.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    let started = Instant::now();
    let mut line = runtime.block_on(run(&args))?;
    if let Some(fields) = line.as_object_mut() {
        fields.insert("elapsed_s".into(), json!(started.elapsed().as_secs_f64()));
        fields.insert("cpu_s".into(), json!(cpu::cpu_seconds(None).ok()));
    }
    println!("{line}");
    Ok(())
}

fn check(args: &Args) -> Result<()> {
    ensure!(args.addr.ip().is_loopback(), "loopback addresses only, not {}", args.addr);
    for (name, value, max) in [
        ("--conns", args.conns, MAX_CONNS),
        ("--inflight", args.inflight, MAX_INFLIGHT),
        ("--idle", args.idle.unwrap_or(1), MAX_IDLE),
        ("--broadcast", args.broadcast.unwrap_or(1), MAX_CONNS),
        ("--window", args.window, push_fanout::MAX_SEQ),
        ("--payload", args.payload, pitaya_codec::MAX_BODY_LEN / 2),
    ] {
        ensure!((1..=max).contains(&value), "{name} must be between 1 and {max}");
    }
    for source in &args.sources {
        ensure!(source.is_loopback(), "loopback source addresses only, not {source}");
    }
    ensure!(
        !(args.ws && (args.idle.is_some() || args.broadcast.is_some())),
        "--ws is for the request mode"
    );
    ensure!(
        args.broadcast.is_none() || args.payload >= push_fanout::MIN_GROUP_PAYLOAD,
        "--payload must be at least {} B in broadcast mode",
        push_fanout::MIN_GROUP_PAYLOAD
    );
    Ok(())
}

fn seconds(name: &str, value: f64) -> Result<Duration> {
    ensure!((0.0..=MAX_SECONDS).contains(&value), "{name} must be between 0 and {MAX_SECONDS} s");
    Duration::try_from_secs_f64(value).with_context(|| format!("{name} {value}"))
}

async fn run(args: &Args) -> Result<serde_json::Value> {
    let timeout = seconds("--timeout", args.timeout)?;
    if let Some(Mode::ZlibLevels(levels)) = &args.mode {
        for &payload in &levels.payloads {
            ensure!(
                (1..=pitaya_codec::MAX_BODY_LEN / 2).contains(&payload),
                "--payloads must be between 1 and {}",
                pitaya_codec::MAX_BODY_LEN / 2
            );
        }
        return zlib_levels::run(&zlib_levels::LevelsPlan {
            levels: levels.levels.clone(),
            payloads: levels.payloads.clone(),
            iterations: levels.iterations,
            batches: levels.batches,
        });
    }
    if let Some(Mode::PushFanout(fanout)) = &args.mode {
        // This process last: whether the members' side kept up.
        let mut pids = cpu::parse_pids(&args.cpu_pids)?;
        pids.push(std::process::id());
        return push_fanout(fanout, timeout, pids).await;
    }
    if let Some(conns) = args.idle {
        let plan = idle::IdlePlan {
            addr: args.addr,
            conns,
            sources: args.sources.clone(),
            heartbeats: args.heartbeats,
            hold: seconds("--hold", args.hold)?,
            timeout,
        };
        let announce = |r: &idle::IdleReport| {
            // Printed while the connections are held: whoever watches the server's memory
            // reads it now.
            println!("{}", json!({"event": "idle_ready", "established": r.established}));
        };
        let report = idle::run(&plan, announce).await?;
        return Ok(json!({
            "mode": "idle",
            "conns": conns,
            "established": report.established,
            "errors": report.errors,
            "setup_s": report.setup.as_secs_f64(),
            "heartbeats_answered": report.heartbeats.map(|(answered, _)| answered),
            "open_at_end": report.heartbeats.map(|(_, open)| open),
        }));
    }
    if let Some(members) = args.broadcast {
        let plan = push_fanout::FanoutPlan {
            addrs: vec![args.addr],
            members,
            window: args.window,
            warmup: seconds("--warmup", args.warmup)?,
            duration: seconds("--duration", args.duration)?,
            timeout,
            target: push_fanout::Target::Group { payload: args.payload },
            // This process last: whether the members' side kept up.
            cpu_pids: cpu::parse_pids(&args.cpu_pids)?
                .into_iter()
                .chain([std::process::id()])
                .collect(),
        };
        return fanout(plan, "broadcast").await;
    }
    let payload = text_payload(args.payload);
    let plan = echo_load::LoadPlan {
        addr: args.addr,
        ws: args.ws,
        conns: args.conns,
        inflight: args.inflight,
        route: args.route.clone(),
        payload,
        warmup: seconds("--warmup", args.warmup)?,
        duration: seconds("--duration", args.duration)?,
        cpu_pids: cpu::parse_pids(&args.cpu_pids)?,
    };
    ensure!(!plan.duration.is_zero(), "--duration must be positive");
    let report = tokio::time::timeout(plan.warmup + plan.duration + timeout, echo_load::run(&plan))
        .await
        .context("the request mode overran its time bound")??;
    let secs = report.window.as_secs_f64();
    let hist = &report.latency_us;
    Ok(json!({
        "mode": "echo",
        "transport": if args.ws { "ws" } else { "tcp" },
        "conns": args.conns,
        "inflight": args.inflight,
        "payload": args.payload,
        "duration_s": secs,
        "requests": report.measured,
        "req_per_s": if secs > 0.0 { report.measured as f64 / secs } else { 0.0 },
        "p50_us": hist.value_at_quantile(0.50),
        "p99_us": hist.value_at_quantile(0.99),
        "max_us": hist.max(),
        "errors": report.errors,
        "total_requests": report.total,
        "window_cpu_s": report.window_cpu_s,
    }))
}

async fn push_fanout(
    args: &FanoutArgs,
    timeout: Duration,
    cpu_pids: Vec<u32>,
) -> Result<serde_json::Value> {
    let addrs = args
        .addrs
        .split(',')
        .map(|a| a.trim().parse::<SocketAddr>().with_context(|| format!("--addrs {a:?}")))
        .collect::<Result<Vec<_>>>()?;
    for addr in &addrs {
        ensure!(addr.ip().is_loopback(), "loopback addresses only, not {addr}");
    }
    ensure!((1..=MAX_CONNS).contains(&args.members), "--members must be between 1 and {MAX_CONNS}");
    ensure!(
        (1..=push_fanout::MAX_SEQ).contains(&args.window),
        "--window must be between 1 and {}",
        push_fanout::MAX_SEQ
    );
    let plan = push_fanout::FanoutPlan {
        addrs,
        members: args.members,
        window: args.window,
        warmup: seconds("--warmup", args.warmup)?,
        duration: seconds("--seconds", args.seconds)?,
        timeout,
        target: push_fanout::Target::Users { uid_prefix: format!("pf{}-", std::process::id()) },
        cpu_pids,
    };
    fanout(plan, "push_fanout").await
}

/// Runs a windowed fan-out and formats its result line.
async fn fanout(plan: push_fanout::FanoutPlan, mode: &str) -> Result<serde_json::Value> {
    ensure!(!plan.duration.is_zero(), "the measured duration must be positive");
    // Set-up, sending and the drain are each bounded by the plan; this bounds the sum.
    let bound = 2 * plan.timeout + plan.warmup + plan.duration;
    let report = tokio::time::timeout(bound, push_fanout::run(&plan))
        .await
        .with_context(|| format!("the {mode} mode overran its time bound"))??;
    let secs = report.window.as_secs_f64();
    let hist = &report.latency_us;
    Ok(json!({
        "mode": mode,
        "frontends": plan.addrs.len(),
        "members": plan.members,
        "bound": report.bound,
        "window": plan.window,
        "sent": report.sent,
        "expected": report.expected,
        "received": report.received,
        "missing": report.missing,
        "duplicates": report.duplicates,
        "complete_members": report.complete_members,
        "duration_s": secs,
        "window_pushes": report.window_pushes,
        "pushes_per_s": if secs > 0.0 { report.window_pushes as f64 / secs } else { 0.0 },
        "p50_us": hist.value_at_quantile(0.50),
        "p99_us": hist.value_at_quantile(0.99),
        "max_us": hist.max(),
        "latency_samples": hist.len(),
        "drain_ms": report.drained.map(|d| d.as_secs_f64() * 1e3),
        "errors": report.errors,
        "window_cpu_s": report.window_cpu_s,
    }))
}

/// `len` bytes of JSON-like chat text: `{"text":"lorem ipsum …"}`, truncated or padded to
/// the exact length. Deterministic, so every run sends the same bytes.
pub(crate) fn text_payload(len: usize) -> Bytes {
    const WORDS: [&str; 16] = [
        "player", "joined", "the", "room", "score", "level", "gold", "attack", "guild", "quest",
        "sword", "shield", "potion", "victory", "team", "match",
    ];
    let mut text = String::from(r#"{"text":""#);
    // A fixed linear congruential sequence: varied enough that zlib finds the ratio of
    // real text (about 2-3x), not the 100x of a repeated byte.
    let mut state = 0x2545_f491_u32;
    while text.len() + 2 < len {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let word = WORDS.get((state >> 28) as usize).copied().unwrap_or("x");
        text.push_str(word);
        text.push(' ');
    }
    text.truncate(len.saturating_sub(2));
    text.push_str(r#""}"#);
    let mut bytes = text.into_bytes();
    bytes.truncate(len);
    bytes.resize(len, b' ');
    Bytes::from(bytes)
}
