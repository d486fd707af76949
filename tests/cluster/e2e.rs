//! Go Pitaya's e2e suite against the `testing` example server (separate processes).
