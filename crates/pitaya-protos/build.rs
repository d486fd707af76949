//! Compiles `proto/` with protox, a pure-Rust protobuf compiler, so that building needs no
//! system `protoc`.

use std::path::PathBuf;

const FILES: [&str; 4] =
    ["protos/cluster.proto", "protos/docs.proto", "protos/service.proto", "test/test.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let fds = protox::compile(FILES, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("descriptor_set.bin"), prost::Message::encode_to_vec(&fds))?;
    prost_build::Config::new()
        // Zero-copy payloads, and deterministic (sorted) map encoding for error metadata.
        .bytes(["."])
        .btree_map(["."])
        .compile_fds(fds)?;
    Ok(())
}
