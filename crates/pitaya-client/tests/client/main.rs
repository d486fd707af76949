//! Integration tests of the client against an in-test fake Pitaya frontend on 127.0.0.1.

mod lifecycle;
mod pushes;
mod requests;
mod resume;
mod support;
mod tls;
mod wire;
