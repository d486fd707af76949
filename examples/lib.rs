//! Applications and helpers shared by the examples in this folder and the integration
//! tests.
//!
//! **Layer:** workspace only (the table in `xtask/src/layers.rs`): may depend on any
//! workspace crate.
//!
//! Each example is a file beside this one, declared as an `[[example]]` in `Cargo.toml`,
//! so `cargo run --example NAME` works from the workspace root and
//! `cargo build --release --example NAME` leaves the binary in `target/release/examples/`.

use std::net::SocketAddr;

use pitaya::acceptor::Transport;

#[path = "src/chat.rs"]
pub mod chat;
#[path = "src/echo.rs"]
pub mod echo;

/// Formats bytes as space-separated lower-case hex, the way the protocol spec shows them.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// The `listening tcp=ADDR ws=ADDR` line the examples print once bound (first address of
/// each kind; TLS variants count as their base transport).
pub fn listening_line(addrs: &[(Transport, SocketAddr)]) -> String {
    let mut line = String::from("listening");
    for (name, ws) in [("tcp", false), ("ws", true)] {
        if let Some((_, addr)) = addrs.iter().find(|(t, _)| t.is_websocket() == ws) {
            line.push_str(&format!(" {name}={addr}"));
        }
    }
    line
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_matches_the_spec_notation() {
        assert_eq!(super::hex(&[0x01, 0x00, 0x00, 0x41]), "01 00 00 41");
        assert_eq!(super::hex(&[]), "");
    }
}
