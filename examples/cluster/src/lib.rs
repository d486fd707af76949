//! Cluster examples of Pitaya for Rust.
//!
//! **Layer:** workspace only (the table in `xtask/src/layers.rs`): may depend on any
//! workspace crate.
//!
//! [`testing`] is the conformance server: the handlers and remotes of Go Pitaya's
//! `examples/testing`, under the same names, so that the scenarios of Go Pitaya's e2e
//! suite run against it unchanged.

pub mod server_main;
pub mod testing;
