//! [`Endpoint`]: where to connect and over which transport, parsed from an address string.

use std::fmt;
use std::str::FromStr;

use crate::ClientError;

/// How packets travel (spec §4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A raw stream of packets over TCP.
    Tcp,
    /// One packet per binary WebSocket frame. Pitaya upgrades any path.
    Ws {
        /// The request path (and query), starting with `/`.
        path: String,
    },
}

/// A parsed server address.
///
/// | address                      | transport | TLS |
/// |------------------------------|-----------|-----|
/// | `127.0.0.1:3250`, `tcp://h:p`| TCP       | only if [`ClientOptions::tls`] is set |
/// | `tls://host:3250`            | TCP       | yes |
/// | `ws://host:3251/any/path`    | WebSocket | only if [`ClientOptions::tls`] is set |
/// | `wss://host/path`            | WebSocket | yes |
///
/// WebSocket ports default to 80 and 443 and the path to `/`; TCP needs a port. IPv6 hosts
/// go in brackets: `[::1]:3250`.
///
/// [`ClientOptions::tls`]: crate::ClientOptions::tls
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Host name or IP address, without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Raw TCP or WebSocket.
    pub transport: Transport,
    /// Whether the address itself demands TLS (`tls://`, `wss://`).
    pub tls: bool,
}

impl Endpoint {
    /// The URL used for the WebSocket upgrade request (`ws://` or `wss://`).
    pub(crate) fn ws_url(&self, path: &str, tls: bool) -> String {
        let scheme = if tls { "wss" } else { "ws" };
        format!("{scheme}://{}:{}{path}", self.bracketed_host(), self.port)
    }

    fn bracketed_host(&self) -> String {
        if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() }
    }
}

impl FromStr for Endpoint {
    type Err = ClientError;

    /// Parses an address as described on [`Endpoint`].
    ///
    /// # Errors
    /// [`ClientError::InvalidAddress`] for an unknown scheme, a missing host, a missing or
    /// invalid port.
    fn from_str(addr: &str) -> Result<Self, ClientError> {
        let invalid = |reason| ClientError::InvalidAddress { addr: addr.to_owned(), reason };
        let (scheme, rest) = addr.split_once("://").unwrap_or(("tcp", addr));
        let (is_ws, tls, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "tcp" => (false, false, None),
            "tls" => (false, true, None),
            "ws" => (true, false, Some(80)),
            "wss" => (true, true, Some(443)),
            _ => return Err(invalid("unknown scheme: expected tcp, tls, ws or wss")),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if !is_ws && !path.is_empty() {
            return Err(invalid("a tcp address has no path"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| invalid("bad host"))?;
        if host.is_empty() {
            return Err(invalid("missing host"));
        }
        let port = match port {
            Some(port) => port.parse().map_err(|_| invalid("bad port"))?,
            None => default_port.ok_or_else(|| invalid("missing port"))?,
        };
        let transport = if is_ws {
            let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
            Transport::Ws { path }
        } else {
            Transport::Tcp
        };
        Ok(Self { host: host.to_owned(), port, transport, tls })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.bracketed_host();
        match (&self.transport, self.tls) {
            (Transport::Tcp, false) => write!(f, "{host}:{}", self.port),
            (Transport::Tcp, true) => write!(f, "tls://{host}:{}", self.port),
            (Transport::Ws { path }, tls) => f.write_str(&self.ws_url(path, tls)),
        }
    }
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]`; `None` for unbalanced brackets.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match authority.split_once(':') {
        // A bare IPv6 address without brackets has several colons: refuse the guess.
        Some((_, port)) if port.contains(':') => None,
        Some((host, port)) => Some((host, Some(port))),
        None => Some((authority, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(addr: &str) -> Endpoint {
        addr.parse().unwrap()
    }

    #[test]
    fn schemes() {
        assert_eq!(
            parse("127.0.0.1:3250"),
            Endpoint {
                host: "127.0.0.1".into(),
                port: 3250,
                transport: Transport::Tcp,
                tls: false
            }
        );
        assert_eq!(
            parse("tcp://localhost:1"),
            Endpoint { host: "localhost".into(), ..parse("x:1") }
        );
        assert!(parse("tls://h:2").tls);
        let ws = parse("ws://127.0.0.1:3251/any/path?x=1");
        assert_eq!(ws.transport, Transport::Ws { path: "/any/path?x=1".into() });
        assert!(!ws.tls);
        assert_eq!(ws.port, 3251);
        let wss = parse("WSS://example.com");
        assert_eq!((wss.port, wss.tls), (443, true));
        assert_eq!(wss.transport, Transport::Ws { path: "/".into() });
        assert_eq!(parse("ws://h?q").transport, Transport::Ws { path: "/?q".into() });
    }

    #[test]
    fn ipv6_and_display() {
        let e = parse("[::1]:3250");
        assert_eq!((e.host.as_str(), e.port), ("::1", 3250));
        assert_eq!(e.to_string(), "[::1]:3250");
        assert_eq!(parse("wss://[::1]/p").to_string(), "wss://[::1]:443/p");
        assert_eq!(parse("tls://h:1").to_string(), "tls://h:1");
    }

    #[test]
    fn rejections() {
        for bad in
            ["", "h", "h:", "h:x", "h:70000", "ftp://h:1", "tcp://h:1/p", "::1:3", "[::1", ":1"]
        {
            assert!(
                matches!(bad.parse::<Endpoint>(), Err(ClientError::InvalidAddress { .. })),
                "{bad}"
            );
        }
    }
}
