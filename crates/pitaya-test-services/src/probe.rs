//! A request/reply exchange over loopback TCP, for the readiness probes.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Bound on connecting, and on the whole exchange once connected.
const TIMEOUT: Duration = Duration::from_secs(1);

/// Connects to `127.0.0.1:port`, writes `request`, and reads until `done` holds for what
/// was read or the peer closes. `None` when the connection fails, or when neither happens
/// within [`TIMEOUT`].
pub(crate) fn exchange(port: u16, request: &[u8], done: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).ok()?;
    let deadline = Instant::now() + TIMEOUT;
    stream.write_all(request).ok()?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while !done(&reply) {
        let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
        stream.set_read_timeout(Some(left)).ok()?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(chunk.get(..n)?),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(reply)
}

/// An HTTP/1.1 request with `Connection: close`; the whole reply (head and body) as text.
pub(crate) fn http(port: u16, method: &str, path: &str, body: &str) -> Option<String> {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let reply = exchange(port, request.as_bytes(), |_| false)?;
    Some(String::from_utf8_lossy(&reply).into_owned())
}

/// Whether `haystack` contains `needle`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn reads_until_done() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (finished, wait) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = [0u8; 5];
            stream.read_exact(&mut request).expect("read");
            assert_eq!(&request, b"PING\n");
            // Stays open: `exchange` must stop at the line end, not wait for a close.
            stream.write_all(b"PONG\r\nrest").expect("write");
            let _ = wait.recv();
        });
        let reply = exchange(port, b"PING\n", |r| contains(r, b"\r\n")).expect("a reply");
        assert!(reply.starts_with(b"PONG\r\n"));
        finished.send(()).expect("the server waits");
        server.join().expect("the server thread");
    }

    #[test]
    fn nothing_listening_is_none() {
        let port = crate::free_port();
        assert_eq!(exchange(port, b"PING\n", |_| true), None);
    }
}
