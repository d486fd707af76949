//! A small chat room over TCP and WebSocket: bind a name, join, talk, leave.
//!
//! ```sh
//! cargo run --release --example chat                # 127.0.0.1:3250 (tcp), :3251 (ws)
//! cargo run --release --example chat -- --tcp 127.0.0.1:0 --ws 127.0.0.1:0
//! ```
//!
//! Talk to it with any Pitaya client, e.g. the project's Rust client, libpitaya, or a
//! pomelo WebSocket client: request `chat.join` `{"name":"ana"}`, notify `chat.message`
//! `{"text":"hi"}`, listen to `onMessage` and `onMembers`.

#![expect(
    clippy::print_stdout,
    reason = "the listening line on stdout is part of the example's interface"
)]

use anyhow::Result;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Pitaya chat room over TCP and WebSocket")]
struct Args {
    /// TCP listen address.
    #[arg(long, default_value = "127.0.0.1:3250")]
    tcp: String,
    /// WebSocket listen address.
    #[arg(long, default_value = "127.0.0.1:3251")]
    ws: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    pitaya_examples::init_tracing();
    let args = Args::parse();
    let running = pitaya_examples::chat::start(&args.tcp, &args.ws).await?;
    println!("{}", pitaya_examples::listening_line(running.local_addrs()));
    println!(
        "chat room ready: request chat.join {{\"name\":\"...\"}}, notify chat.message {{\"text\":\"...\"}}; Ctrl-C stops"
    );
    running.wait_for_signal().await;
    running.shutdown().await;
    Ok(())
}
