//! Cluster mode end to end.
//!
//! - [`memory`]: frontends and backends in this process, joined by the in-memory
//!   discovery and RPC of `pitaya-cluster`: the cluster runtime's behaviour, quickly.
//! - [`e2e`]: Go Pitaya's e2e suite ported to Rust: the `testing` example server
//!   launched as separate processes over real etcd and NATS.
//! - [`interop`]: a raw NATS client and etcdctl playing Go peers, with the bytes of
//!   spec Appendix A.
//! - [`modules`]: the module lifecycle and the binary module on a running server.
//! - [`metrics`]: Prometheus scrape and statsd datagrams after real traffic.
//! - [`faults`]: backends killed under load, a backend's NATS connection cut, NATS and
//!   etcd restarted.
//! - [`health`]: routing around a registered server that does not answer, in one
//!   process.
//! - [`answer`]: a backend answering a forwarded request by hand (Go's `ResponseMID`),
//!   and a backend's bind callbacks around the frontend's bind.
//! - [`ordering`]: one session's forwarded messages in order, pipelined over NATS.
//! - [`batch`]: pushes to many users, one message per frontend or Go's one per uid.
//! - [`bot`]: `examples/bot/cluster.yaml` run by the pitaya-bot library against the
//!   `testing` example's frontend and backend.

mod answer;
mod batch;
mod bot;
mod e2e;
mod faults;
mod health;
mod inproc;
mod interop;
mod memory;
mod metrics;
mod modules;
mod ordering;
mod support;
