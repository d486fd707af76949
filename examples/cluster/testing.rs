//! The conformance server: Go Pitaya's `examples/testing/main.go` in Rust, with the same
//! flags, handlers, remotes and readiness line, so that Pitaya's e2e scenarios (and the
//! Rust port of them in `tests/cluster`) drive it unchanged.
//!
//! ```text
//! cargo build --release --example testing
//! target/release/examples/testing -type connector -port 32222 -sdprefix test/
//! target/release/examples/testing -type game -frontend=false -sdprefix test/
//! ```
//!
//! Flags follow Go's `flag` package: `-k v`, `-k=v`, `--k=v`, and a bare boolean
//! (`-debug`) all parse. NATS (`nats://localhost:4222`) and etcd (`localhost:2379`) come
//! from Pitaya's defaults, overridable with `PITAYA_*` variables. Once registered in etcd,
//! synced and subscribed to NATS, the server logs `all modules started!` on stderr.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    pitaya_cluster_examples::server_main::main().await
}
