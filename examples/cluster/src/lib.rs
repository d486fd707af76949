//! Cluster examples of Pitaya for Rust.
//!
//! [`testing`] is the conformance server: the handlers and remotes of Go Pitaya's
//! `examples/testing`, under the same names, so that the scenarios of Go Pitaya's e2e
//! suite run against it unchanged.

pub mod server_main;
pub mod testing;
