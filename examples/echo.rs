//! The echo server: every route of the black-box checks, on TCP and WebSocket.
//!
//! ```sh
//! cargo run --release --example echo -- --tcp 127.0.0.1:3250 --ws 127.0.0.1:3251
//! ```
//!
//! Flags: `--compression`, `--dict`, `--serializer json|protobuf`,
//! `--tls-cert FILE --tls-key FILE`, `--print-config`. `PITAYA_*` environment variables configure the rest
//! (a flag wins over the environment). Once every acceptor is bound it prints
//! `listening tcp=127.0.0.1:PORT ws=127.0.0.1:PORT`.

#![expect(
    clippy::print_stdout,
    reason = "the listening line on stdout is part of the example's interface"
)]

use anyhow::Result;
use clap::Parser;
use pitaya_examples::echo::{EchoArgs, start};

#[tokio::main]
async fn main() -> Result<()> {
    pitaya_examples::init_tracing();
    let args = EchoArgs::parse();
    if args.print_config {
        print!("{}", pitaya_examples::echo::config(&args)?);
        return Ok(());
    }
    let running = start(&args).await?;
    println!("{}", pitaya_examples::listening_line(running.local_addrs()));
    running.wait_for_signal().await;
    running.shutdown().await;
    Ok(())
}
