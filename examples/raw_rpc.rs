//! Raw request-reply baselines for the cluster section of `cargo xtask bench`: the limit
//! of the transport a forwarded request crosses, with nothing of Pitaya on top.
//!
//! ```sh
//! cargo run --release --example raw_rpc -- nats-serve --nats nats://127.0.0.1:4222
//! cargo run --release --example raw_rpc -- nats-load --nats nats://127.0.0.1:4222 --conns 4 --inflight 10
//! cargo run --release --example raw_rpc -- grpc-serve
//! cargo run --release --example raw_rpc -- grpc-load --addr 127.0.0.1:PORT --conns 4 --inflight 10
//! ```
//!
//! - `nats-serve`: one async-nats connection subscribed to `--subject`, publishing every
//!   message's payload back to its reply subject;
//! - `grpc-serve`: a tonic server whose one unary method, `/bench.Echo/Echo`, returns the
//!   request's bytes (a pass-through codec: no protobuf);
//! - `nats-load`, `grpc-load`: one async-nats connection (`Client::request`, the reply
//!   through async-nats's inbox multiplexer) or one tonic channel, as a Pitaya frontend
//!   has one towards a backend, carrying `--conns` × `--inflight` closed-loop callers of
//!   `--payload` bytes each. After `--warmup` seconds it measures `--duration` seconds and
//!   prints one JSON line with the fields of `loadgen`'s request mode (`req_per_s`,
//!   `p50_us`, …, `window_cpu_s` for `--cpu-pids`), plus `own_window_cpu_s`, its own CPU
//!   time within the window.
//!
//! The servers print `{"event":"ready",…}` on stdout once they serve. Loopback only.

#![expect(clippy::print_stdout, reason = "the ready and result lines on stdout are the interface")]

#[path = "src/loadgen/cpu.rs"]
mod cpu;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::{Buf, BufMut, Bytes};
use clap::Parser;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::json;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};

/// Raw NATS and gRPC request-reply: servers and load (loopback only).
#[derive(Debug, Parser)]
enum Cmd {
    /// Echo every message on the subject back to its reply subject.
    NatsServe {
        /// nats-server URL (loopback).
        #[arg(long)]
        nats: String,
        #[arg(long, default_value = SUBJECT)]
        subject: String,
    },
    /// Serve the unary `/bench.Echo/Echo`, which returns the request's bytes.
    GrpcServe {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Request-reply over NATS against `nats-serve`.
    NatsLoad {
        #[arg(long)]
        nats: String,
        #[arg(long, default_value = SUBJECT)]
        subject: String,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Unary calls over one tonic channel against `grpc-serve`.
    GrpcLoad {
        #[arg(long)]
        addr: SocketAddr,
        #[command(flatten)]
        load: LoadArgs,
    },
}

/// The shape and length of a load run, as `loadgen` takes them.
#[derive(Debug, Clone, clap::Args)]
struct LoadArgs {
    /// Multiplied by `--inflight`: the callers kept busy over the one connection.
    #[arg(long, default_value_t = 4)]
    conns: usize,
    #[arg(long, default_value_t = 10)]
    inflight: usize,
    /// Request body size in bytes.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of load before the measurement starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Comma-separated process ids whose CPU time within the window is reported.
    #[arg(long, default_value = "")]
    cpu_pids: String,
}

const SUBJECT: &str = "bench.raw.echo";
const GRPC_PATH: &str = "/bench.Echo/Echo";
/// Bounds that keep a typo from turning into a machine-wide run.
const MAX_CALLERS: usize = 10_000;
const MAX_SECONDS: f64 = 600.0;
/// How long one call may take before it counts as an error.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Result<()> {
    pitaya_examples::init_tracing();
    let cmd = Cmd::parse();
    // One thread, as loadgen and as a pinned server: the figures are per core.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let started = Instant::now();
    let line = match cmd {
        Cmd::NatsServe { nats, subject } => return runtime.block_on(nats_serve(&nats, &subject)),
        Cmd::GrpcServe { listen } => return runtime.block_on(grpc_serve(listen)),
        Cmd::NatsLoad { nats, subject, load } => runtime.block_on(nats_load(&nats, subject, &load)),
        Cmd::GrpcLoad { addr, load } => runtime.block_on(grpc_load(addr, &load)),
    };
    let mut line = line?;
    if let Some(fields) = line.as_object_mut() {
        fields.insert("elapsed_s".into(), json!(started.elapsed().as_secs_f64()));
        fields.insert("cpu_s".into(), json!(cpu::cpu_seconds(None).ok()));
    }
    println!("{line}");
    Ok(())
}

/// Refuses a NATS URL whose host is not loopback.
fn check_nats_url(url: &str) -> Result<()> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    ensure!(matches!(host, "127.0.0.1" | "localhost" | "[::1]"), "loopback only, not {url}");
    Ok(())
}

async fn nats_serve(url: &str, subject: &str) -> Result<()> {
    check_nats_url(url)?;
    let client = async_nats::connect(url).await.with_context(|| format!("connecting to {url}"))?;
    let mut sub = client.subscribe(subject.to_owned()).await?;
    // The SUB has reached the server once a flush returns: requests sent from now on
    // find a subscriber.
    client.flush().await?;
    println!("{}", json!({"event": "ready", "subject": subject}));
    while let Some(msg) = sub.next().await {
        if let Some(reply) = msg.reply {
            client.publish(reply, msg.payload).await?;
        }
    }
    bail!("the subscription ended (connection closed)")
}

async fn nats_load(url: &str, subject: String, args: &LoadArgs) -> Result<serde_json::Value> {
    check_nats_url(url)?;
    let client = async_nats::connect(url).await.with_context(|| format!("connecting to {url}"))?;
    let report = load(args, move |payload| {
        let (client, subject) = (client.clone(), subject.clone());
        async move { Ok(client.request(subject, payload).await?.payload) }
    })
    .await?;
    Ok(report)
}

async fn grpc_load(addr: SocketAddr, args: &LoadArgs) -> Result<serde_json::Value> {
    ensure!(addr.ip().is_loopback(), "loopback addresses only, not {addr}");
    // The endpoint settings of pitaya-grpc's peers.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let grpc = tonic::client::Grpc::new(channel);
    let path = http::uri::PathAndQuery::from_static(GRPC_PATH);
    load(args, move |payload| {
        let (mut grpc, path) = (grpc.clone(), path.clone());
        async move {
            grpc.ready().await.map_err(|e| anyhow::anyhow!("channel not ready: {e}"))?;
            let response = grpc.unary(Request::new(payload), path, RawCodec).await?;
            Ok(response.into_inner())
        }
    })
    .await
}

/// Runs `conns × inflight` closed-loop callers of `call` and reports as loadgen does.
async fn load<F, Fut>(args: &LoadArgs, call: F) -> Result<serde_json::Value>
where
    F: Fn(Bytes) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Bytes>> + Send,
{
    let callers = args.conns.saturating_mul(args.inflight);
    ensure!(
        (1..=MAX_CALLERS).contains(&callers),
        "--conns x --inflight must be 1 to {MAX_CALLERS}"
    );
    ensure!((1..=1 << 20).contains(&args.payload), "--payload must be 1 to 1 MiB");
    let secs = |name: &str, value: f64| -> Result<Duration> {
        ensure!((0.0..=MAX_SECONDS).contains(&value), "{name} must be 0 to {MAX_SECONDS} s");
        Ok(Duration::from_secs_f64(value))
    };
    let (warmup, duration) = (secs("--warmup", args.warmup)?, secs("--duration", args.duration)?);
    ensure!(!duration.is_zero(), "--duration must be positive");
    let payload = Bytes::from(vec![b'x'; args.payload]);
    let start = Instant::now() + warmup;
    let end = start + duration;
    let mut pids = cpu::parse_pids(&args.cpu_pids)?;
    pids.push(std::process::id());
    let window_cpu = cpu::spawn_window(pids, start, end);

    let empty = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut callers_set = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let (call, payload, mut stats) = (call.clone(), payload.clone(), Stats::new(empty.clone()));
        callers_set.spawn(async move {
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let result = tokio::time::timeout(CALL_TIMEOUT, call(payload.clone())).await;
                let now = Instant::now();
                stats.total += 1;
                match result {
                    Ok(Ok(body)) if body.len() == payload.len() => {
                        if now >= start && now < end {
                            stats.measured += 1;
                            let micros = u64::try_from(now.duration_since(sent).as_micros());
                            stats.latency_us.saturating_record(micros.unwrap_or(u64::MAX));
                        }
                    }
                    Ok(Ok(_)) => stats.errors += 1,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "call failed");
                        stats.errors += 1;
                    }
                    Err(_) => stats.errors += 1,
                }
            }
            stats
        });
    }
    let mut all = Stats::new(empty);
    while let Some(stats) = callers_set.join_next().await {
        let stats = stats?;
        all.latency_us.add(&stats.latency_us)?;
        all.measured += stats.measured;
        all.total += stats.total;
        all.errors += stats.errors;
    }
    let mut window_cpu = window_cpu.await?;
    let own = window_cpu.pop().flatten();
    let secs = duration.as_secs_f64();
    let hist = &all.latency_us;
    Ok(json!({
        "mode": "raw",
        "conns": args.conns,
        "inflight": args.inflight,
        "payload": args.payload,
        "duration_s": secs,
        "requests": all.measured,
        "req_per_s": all.measured as f64 / secs,
        "p50_us": hist.value_at_quantile(0.50),
        "p99_us": hist.value_at_quantile(0.99),
        "max_us": hist.max(),
        "errors": all.errors,
        "total_requests": all.total,
        "window_cpu_s": window_cpu,
        "own_window_cpu_s": own,
    }))
}

/// One caller's counts.
struct Stats {
    latency_us: Histogram<u64>,
    measured: u64,
    total: u64,
    errors: u64,
}

impl Stats {
    fn new(latency_us: Histogram<u64>) -> Self {
        Self { latency_us, measured: 0, total: 0, errors: 0 }
    }
}

async fn grpc_serve(listen: SocketAddr) -> Result<()> {
    ensure!(listen.ip().is_loopback(), "loopback addresses only, not {listen}");
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    println!("{}", json!({"event": "ready", "addr": addr.to_string()}));
    tonic::transport::Server::builder()
        .add_service(EchoService)
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}

/// Bytes in, bytes out: the message is the gRPC frame's payload as it is.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        Self
    }

    fn decoder(&mut self) -> Self::Decoder {
        Self
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The `bench.Echo` service: its one method echoes the request.
#[derive(Debug, Clone, Copy)]
struct EchoService;

impl NamedService for EchoService {
    const NAME: &'static str = "bench.Echo";
}

/// The `Echo` method.
#[derive(Debug, Clone, Copy)]
struct Echo;

impl UnaryService<Bytes> for Echo {
    type Response = Bytes;
    type Future = std::future::Ready<Result<Response<Bytes>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        std::future::ready(Ok(Response::new(request.into_inner())))
    }
}

impl<B> Service<http::Request<B>> for EchoService
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() == GRPC_PATH {
            Box::pin(
                async move { Ok(tonic::server::Grpc::new(RawCodec).unary(Echo, request).await) },
            )
        } else {
            Box::pin(async move { Ok(Status::unimplemented("only /bench.Echo/Echo").into_http()) })
        }
    }
}
