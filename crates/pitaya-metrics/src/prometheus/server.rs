//! [`MetricsServer`]: a minimal HTTP/1.1 endpoint for `GET /metrics`.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::PrometheusReporter;
use crate::MetricsError;

/// Limit on a request head; a longer one gets `431` and the connection closes.
const MAX_HEAD: usize = 8 * 1024;

/// The running `/metrics` listener. Dropping it stops accepting and ends the task.
///
/// Each connection serves one request and closes (`Connection: close`): `GET /metrics`
/// (a query string is ignored) gets `200` with `text/plain; version=0.0.4`, any other
/// path `404`, any other method `405`.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    pub(super) async fn bind(
        addr: SocketAddr,
        reporter: PrometheusReporter,
    ) -> Result<Self, MetricsError> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let reporter = reporter.clone();
                        tokio::spawn(async move {
                            if let Err(e) = serve_one(stream, &reporter).await {
                                tracing::debug!(error = %e, "metrics request failed");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(Self { local_addr, task })
    }

    /// The bound address (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_one(mut stream: TcpStream, reporter: &PrometheusReporter) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return respond(&mut stream, "431 Request Header Fields Too Large", "").await;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let path = target.split(|b| *b == b'?').next().unwrap_or_default();
    if method != b"GET" {
        return respond(&mut stream, "405 Method Not Allowed", "").await;
    }
    if path != b"/metrics" {
        return respond(&mut stream, "404 Not Found", "404 page not found\n").await;
    }
    respond(&mut stream, "200 OK", &reporter.render()).await
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
