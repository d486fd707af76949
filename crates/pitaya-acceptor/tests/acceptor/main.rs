//! Integration tests: real sockets on 127.0.0.1, one binary for every transport.

mod common;
mod proxy;
mod rate_limit;
mod tcp;
mod tls;
mod ws;
