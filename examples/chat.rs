//! A small chat room over TCP and WebSocket: bind a name, join, talk, leave; with a web
//! page for it.
//!
//! ```sh
//! cargo run --release --example chat   # 127.0.0.1:3250 (tcp), :3251 (ws), page on http://127.0.0.1:3252/
//! cargo run --release --example chat -- --tcp 127.0.0.1:0 --ws 127.0.0.1:0 --http 127.0.0.1:0
//! ```
//!
//! It prints `listening tcp=ADDR ws=ADDR`, then `page http://ADDR/`: open that in a
//! browser (two tabs make two members). The page uses the JS client of `clients/js/`.
//!
//! Talk to it with any Pitaya client, e.g. the project's Rust client, libpitaya, or a
//! pomelo WebSocket client: request `chat.join` `{"name":"ana"}`, notify `chat.message`
//! `{"text":"hi"}`, listen to `onMessage` and `onMembers`.

#![expect(
    clippy::print_stdout,
    reason = "the listening line on stdout is part of the example's interface"
)]

use anyhow::{Context, Result};
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
    /// HTTP listen address of the chat page.
    #[arg(long, default_value = "127.0.0.1:3252")]
    http: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    pitaya_examples::init_tracing();
    let args = Args::parse();
    let running = pitaya_examples::chat::start(&args.tcp, &args.ws).await?;
    println!("{}", pitaya_examples::listening_line(running.local_addrs()));
    let ws = running
        .local_addrs()
        .iter()
        .find(|(transport, _)| transport.is_websocket())
        .map(|(_, addr)| *addr)
        .context("the chat server has no WebSocket acceptor")?;
    let page = pitaya_examples::chat::web::serve(&args.http, ws).await?;
    println!("page {}", page.url());
    println!(
        "chat room ready: request chat.join {{\"name\":\"...\"}}, notify chat.message {{\"text\":\"...\"}}; Ctrl-C stops"
    );
    running.wait_for_signal().await;
    page.shutdown().await;
    running.shutdown().await;
    Ok(())
}
