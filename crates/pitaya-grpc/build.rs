//! Generates the `protos.Pitaya` gRPC client and server from `proto/protos/service.proto`
//! with protox, a pure-Rust protobuf compiler, so that building needs no system `protoc`.
//! The messages are not generated again: they are `pitaya_protos::protos`' types.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.join("protos").display());
    // service.proto imports cluster.proto; protox puts both in the set.
    let fds = protox::compile(["protos/service.proto", "protos/cluster.proto"], [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .extern_path(".protos", "::pitaya_protos::protos")
        .compile_fds(fds)?;
    Ok(())
}
