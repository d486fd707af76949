//! An echo server assembled from the server runtime alone, without the `pitaya` facade:
//! `cargo run -p pitaya-server --example echo [-- ADDR]` (default `127.0.0.1:3250`), then
//! request `room.echo` with any body. It builds without cluster support too
//! (`--no-default-features`).

use bytes::Bytes;
use pitaya_core::Error;
use pitaya_handler::Component;
use pitaya_server::Builder;

async fn echo(body: Bytes) -> Result<Bytes, Error> {
    Ok(body)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3250".to_owned());
    Builder::new()
        .tcp(addr)
        .component(Component::new("room").handler("echo", echo))
        .build()?
        .run()
        .await
}
