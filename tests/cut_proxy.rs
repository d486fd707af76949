//! [`CutProxy`]: a loopback TCP proxy that tests use to break connections on purpose, at
//! once or at an exact byte.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// No byte limit on a connection.
const UNLIMITED: u64 = u64::MAX;

/// A TCP proxy on 127.0.0.1 (a free port) in front of `target`, forwarding bytes both
/// ways unchanged, one upstream connection per accepted connection, until told to cut.
///
/// A cut resets both sides (`SO_LINGER` 0, so the peers see a reset, or an end of stream
/// when the reset races with their last read), exactly as a broken network would: the
/// client and the server each notice on their own. Connections accepted after a cut are
/// forwarded normally. Dropping the proxy stops accepting and resets every connection.
///
/// ```no_run
/// # async fn demo(server: std::net::SocketAddr) -> std::io::Result<()> {
/// let proxy = pitaya_tests::CutProxy::start(server).await?;
/// // connect the client to proxy.addr() ... then:
/// proxy.cut_after(100); // the client gets exactly 100 more bytes, then the cut
/// proxy.cut_all(); // or cut every live connection now
/// proxy.hold_all(); // or let them go silent, both ways, without ending
/// # Ok(())
/// # }
/// ```
pub struct CutProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

struct Shared {
    live: Mutex<Vec<Weak<Link>>>,
    accepted: AtomicUsize,
    refusing: AtomicBool,
}

/// One proxied connection's controls.
struct Link {
    /// Bytes the server→client direction may still forward before the cut.
    budget: AtomicU64,
    /// Bytes are read and thrown away, both ways (see [`CutProxy::hold_all`]).
    held: AtomicBool,
    /// Set to `true` to reset the connection now.
    cut: watch::Sender<bool>,
}

impl CutProxy {
    /// Starts the proxy on 127.0.0.1, port 0, in front of `target`.
    ///
    /// # Errors
    /// When the listening socket cannot be bound.
    pub async fn start(target: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            live: Mutex::new(Vec::new()),
            accepted: AtomicUsize::new(0),
            refusing: AtomicBool::new(false),
        });
        let registry = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if registry.refusing.load(Ordering::SeqCst) {
                    let _ = client.set_zero_linger();
                    continue;
                }
                registry.accepted.fetch_add(1, Ordering::SeqCst);
                let link = Arc::new(Link {
                    budget: AtomicU64::new(UNLIMITED),
                    held: AtomicBool::new(false),
                    cut: watch::Sender::new(false),
                });
                {
                    let mut live = registry.live.lock().unwrap_or_else(PoisonError::into_inner);
                    live.retain(|l| l.strong_count() > 0);
                    live.push(Arc::downgrade(&link));
                }
                tokio::spawn(forward(client, target, link));
            }
        });
        Ok(Self { addr, shared, accept })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// While `true`, new connections are reset as soon as they are accepted (not counted
    /// by [`accepted`](Self::accepted)), as a server out of reach would: a client keeps
    /// failing to reconnect until it is `false` again.
    pub fn refuse(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Connections accepted and forwarded so far (live or not).
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections still forwarding.
    pub fn live(&self) -> usize {
        self.links().len()
    }

    /// Resets every live connection now. Bytes in flight inside the proxy are lost, as
    /// they would be on a broken network.
    pub fn cut_all(&self) {
        for link in self.links() {
            link.cut.send_replace(true);
        }
    }

    /// Turns every live connection into a black hole: from now on the bytes of both
    /// directions are read and thrown away, and nothing ends the connection, as on a
    /// network that died silently. The peers notice only through their own timeouts
    /// (heartbeats); connections accepted later are forwarded normally.
    pub fn hold_all(&self) {
        for link in self.links() {
            link.held.store(true, Ordering::SeqCst);
        }
    }

    /// Lets every live connection forward exactly `bytes` more bytes from the server to
    /// the client, then resets it (at once for 0). The client→server direction is not
    /// limited. Connections accepted later are not affected.
    pub fn cut_after(&self, bytes: u64) {
        for link in self.links() {
            link.budget.store(bytes, Ordering::SeqCst);
            if bytes == 0 {
                link.cut.send_replace(true);
            }
        }
    }

    fn links(&self) -> Vec<Arc<Link>> {
        let live = self.shared.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.iter().filter_map(Weak::upgrade).collect()
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_all();
    }
}

/// Why forwarding stopped early.
enum Cut {
    /// Either side failed, or [`CutProxy::cut_all`]: reset both.
    Reset,
    /// The byte budget of [`CutProxy::cut_after`] is spent: the client has its exact
    /// bytes and an end of stream after them (a reset could overtake the last bytes); the
    /// server gets a reset.
    Budget,
}

/// Forwards one connection until both directions ended or a cut.
async fn forward(mut client: TcpStream, target: SocketAddr, link: Arc<Link>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let mut cut = link.cut.subscribe();
    let ended = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let both = async {
            tokio::try_join!(
                pipe(client_read, server_write, &link.held, None),
                pipe(server_read, client_write, &link.held, Some(&link.budget)),
            )
            .map(|_| ())
        };
        tokio::select! {
            ended = both => ended,
            _ = cut.wait_for(|cut| *cut) => Err(Cut::Reset),
        }
    };
    match ended {
        Ok(()) => {}
        Err(Cut::Reset) => {
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
        }
        Err(Cut::Budget) => {
            let _ = server.set_zero_linger();
        }
    }
}

/// Copies `from` to `to` until end of stream (then shuts `to` down), an error, or the
/// budget is spent (then `to` is shut down after exactly the budget's bytes). While
/// `held`, bytes are read and dropped, and an end of stream is not passed on.
async fn pipe(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    held: &AtomicBool,
    budget: Option<&AtomicU64>,
) -> Result<(), Cut> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await.map_err(|_| Cut::Reset)?;
        if held.load(Ordering::SeqCst) {
            if n == 0 {
                // A dead network carries no goodbye either: stay open, silent.
                std::future::pending::<()>().await;
            }
            continue;
        }
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        let mut allowed = n;
        let mut spent = false;
        if let Some(budget) = budget {
            let left = budget.load(Ordering::SeqCst);
            if left != UNLIMITED {
                allowed = usize::try_from(left).unwrap_or(usize::MAX).min(n);
                budget.store(left - allowed as u64, Ordering::SeqCst);
                spent = left == allowed as u64;
            }
        }
        let chunk = buf.get(..allowed).unwrap_or_default();
        to.write_all(chunk).await.map_err(|_| Cut::Reset)?;
        if spent {
            let _ = to.shutdown().await;
            return Err(Cut::Budget);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIMIT: Duration = Duration::from_secs(5);

    /// A server that, on each connection, waits for one byte, sends `n` bytes counting
    /// 0, 1, 2..., then waits.
    async fn talker(n: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut go = [0u8; 1];
                    let _ = tcp.read_exact(&mut go).await;
                    let bytes: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
                    let _ = tcp.write_all(&bytes).await;
                    let mut sink = Vec::new();
                    let _ = tcp.read_to_end(&mut sink).await;
                });
            }
        });
        addr
    }

    async fn read_all(tcp: &mut TcpStream) -> (Vec<u8>, bool) {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(LIMIT, tcp.read(&mut buf)).await.expect("the cut comes") {
                Ok(0) => return (got, false),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => return (got, true),
            }
        }
    }

    #[tokio::test]
    async fn cut_after_delivers_exactly_that_many_bytes() {
        let proxy = CutProxy::start(talker(100_000).await).await.unwrap();
        let mut tcp = TcpStream::connect(proxy.addr()).await.unwrap();
        while proxy.live() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        proxy.cut_after(12_345);
        tcp.write_all(b"g").await.unwrap();
        let (got, _) = read_all(&mut tcp).await;
        assert_eq!(got.len(), 12_345);
        assert!(got.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
        // Refused connections end at once and are not counted.
        proxy.refuse(true);
        let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
        let (nothing, _) = read_all(&mut refused).await;
        assert!(nothing.is_empty());
        proxy.refuse(false);
        // New connections are forwarded again.
        let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
        again.write_all(b"g").await.unwrap();
        let mut first = [0u8; 10];
        again.read_exact(&mut first).await.unwrap();
        assert_eq!(proxy.accepted(), 2);
        // Dropping the proxy resets what is still open.
        drop(proxy);
        let _ = read_all(&mut again).await;
    }

    #[tokio::test]
    async fn hold_all_swallows_bytes_both_ways_without_ending() {
        let proxy = CutProxy::start(talker(10).await).await.unwrap();
        let mut tcp = TcpStream::connect(proxy.addr()).await.unwrap();
        while proxy.live() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        proxy.hold_all();
        // The talker never hears the go, so nothing comes back, and nothing ends.
        tcp.write_all(b"g").await.unwrap();
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await;
        assert!(read.is_err(), "{read:?}");
        assert_eq!(proxy.live(), 1);
        proxy.cut_all();
        let (rest, _) = read_all(&mut tcp).await;
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn cut_all_resets_every_live_connection() {
        let proxy = CutProxy::start(talker(10).await).await.unwrap();
        let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
        a.write_all(b"g").await.unwrap();
        b.write_all(b"g").await.unwrap();
        let mut ten = [0u8; 10];
        a.read_exact(&mut ten).await.unwrap();
        b.read_exact(&mut ten).await.unwrap();
        proxy.cut_all();
        for tcp in [&mut a, &mut b] {
            let (rest, _) = read_all(tcp).await;
            assert!(rest.is_empty());
        }
    }
}
