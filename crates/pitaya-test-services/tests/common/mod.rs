//! Raw protocol exchanges the tests use to check that a service answers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Connects to `127.0.0.1:port`, writes `request`, and reads until the reply contains
/// `until`; `None` if the connection is refused or the reply does not come within 5 s.
pub(crate) fn exchange(port: u16, request: &[u8], until: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(request).ok()?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while !reply.windows(until.len()).any(|w| w == until) {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        reply.extend_from_slice(&chunk[..n]);
    }
    Some(reply)
}

/// Whether something accepts connections on `127.0.0.1:port`.
pub(crate) fn accepts(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}
