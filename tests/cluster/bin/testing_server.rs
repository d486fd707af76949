//! The `testing` example server as a binary of this package, so that the cluster tests
//! find it through `CARGO_BIN_EXE_pitaya-testing-server` (Cargo builds a package's
//! binaries before its integration tests, but not another package's examples).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    pitaya_cluster_examples::server_main::main().await
}
