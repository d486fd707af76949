//! PROXY protocol v1/v2 header reading (spec §4.3): the client address a load balancer
//! puts in front of the stream.

use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use ppp::{PartialResult, v1, v2};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::ProxyHeaderError;

/// Largest possible header: a v2 header is 16 bytes plus a u16 length.
const MAX_HEADER_LEN: usize = 16 + u16::MAX as usize;
/// Largest v1 header, CRLF included (PROXY protocol spec §2.1).
const V1_MAX_LEN: usize = 107;
/// How every v1 header starts.
const V1_PREFIX: &[u8] = b"PROXY ";

/// What a load balancer told us in a complete header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProxyHeader {
    /// Header length in bytes, including the v1 CRLF or the v2 TLVs.
    pub(crate) len: usize,
    /// The client's address.
    pub(crate) source: SocketAddr,
}

/// Parses a PROXY header at the start of `buf`.
///
/// `Ok(None)` means `buf` holds the beginning of a header and more bytes are needed.
/// Bytes after the header are ignored.
pub(crate) fn parse_header(buf: &[u8]) -> Result<Option<ProxyHeader>, ProxyHeaderError> {
    if starts_like(buf, v2::PROTOCOL_PREFIX) {
        return parse_v2(buf);
    }
    if !starts_like(buf, V1_PREFIX) {
        // Refuse at once a client that sends no header, rather than at the timeout.
        return Err(ProxyHeaderError::Malformed("no proxy protocol signature".into()));
    }
    // ppp reports some prefixes of a valid v1 line as invalid (a trailing space reads as
    // an empty port), so the line is only parsed once it is complete.
    if !buf.iter().take(V1_MAX_LEN).any(|&b| b == b'\n') {
        if buf.len() >= V1_MAX_LEN {
            return Err(ProxyHeaderError::Malformed("v1 header longer than 107 bytes".into()));
        }
        return Ok(None);
    }
    let header = v1::Header::try_from(buf).map_err(|e| ProxyHeaderError::Malformed(Box::new(e)))?;
    let source = match header.addresses {
        v1::Addresses::Tcp4(a) => SocketAddr::from((a.source_address, a.source_port)),
        v1::Addresses::Tcp6(a) => SocketAddr::from((a.source_address, a.source_port)),
        v1::Addresses::Unknown => return Err(ProxyHeaderError::NoSourceAddress),
    };
    Ok(Some(ProxyHeader { len: header.header.len(), source }))
}

/// v2 headers announce their length, so ppp tells incomplete from invalid reliably.
fn parse_v2(buf: &[u8]) -> Result<Option<ProxyHeader>, ProxyHeaderError> {
    let header = match v2::Header::try_from(buf) {
        Ok(header) => header,
        Err(e) if e.is_incomplete() => return Ok(None),
        Err(e) => return Err(ProxyHeaderError::Malformed(Box::new(e))),
    };
    if header.command == v2::Command::Local {
        return Err(ProxyHeaderError::NoSourceAddress);
    }
    let source = match header.addresses {
        v2::Addresses::IPv4(a) => SocketAddr::from((a.source_address, a.source_port)),
        v2::Addresses::IPv6(a) => SocketAddr::from((a.source_address, a.source_port)),
        v2::Addresses::Unspecified | v2::Addresses::Unix(_) => {
            return Err(ProxyHeaderError::NoSourceAddress);
        }
    };
    Ok(Some(ProxyHeader { len: header.len(), source }))
}

/// Whether `buf` and `signature` agree on their common length.
fn starts_like(buf: &[u8], signature: &[u8]) -> bool {
    buf.iter().zip(signature).all(|(a, b)| a == b)
}

/// Reads a PROXY header off `io` and returns the client address and the bytes that came
/// after the header in the same reads; the caller must consume those before reading
/// `io` again (they are the first packet bytes, or the TLS client hello).
///
/// Not cancel safe; the caller bounds it with the handshake timeout.
pub(crate) async fn read_header<R>(io: &mut R) -> Result<(SocketAddr, BytesMut), crate::AcceptError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    // Typical headers are 28 to 107 bytes; the buffer only grows for v2 TLVs.
    let mut buf = BytesMut::with_capacity(256);
    loop {
        if let Some(header) = parse_header(&buf)? {
            // ppp's header is a slice of `buf`, so `len` never exceeds what is buffered.
            buf.advance(header.len);
            return Ok((header.source, buf));
        }
        if buf.len() >= MAX_HEADER_LEN {
            return Err(ProxyHeaderError::Malformed("header too long".into()).into());
        }
        buf.reserve(256);
        if io.read_buf(&mut buf).await? == 0 {
            return Err(ProxyHeaderError::UnexpectedEof.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_ipv4(command: u8) -> Vec<u8> {
        let mut h = v2::PROTOCOL_PREFIX.to_vec();
        // version 2 + command, TCP over IPv4, 12 address bytes
        h.extend([0x20 | command, 0x11, 0, 12]);
        h.extend([198, 51, 100, 9, 10, 0, 0, 1, 0x1F, 0x90, 0x0C, 0xB2]);
        h
    }

    #[test]
    fn v1_tcp4_and_tcp6() {
        let h = parse_header(b"PROXY TCP4 192.0.2.1 10.0.0.1 5000 3250\r\n\x04\0\0\0")
            .unwrap()
            .unwrap();
        assert_eq!(h.len, 41);
        assert_eq!(h.source, "192.0.2.1:5000".parse().unwrap());

        let h = parse_header(b"PROXY TCP6 2001:db8::7 ::1 65535 80\r\n").unwrap().unwrap();
        assert_eq!(h.source, "[2001:db8::7]:65535".parse().unwrap());
    }

    #[test]
    fn v2_proxy_and_local() {
        let mut wire = v2_ipv4(1);
        wire.extend([3, 0, 0, 0]);
        let h = parse_header(&wire).unwrap().unwrap();
        assert_eq!(h.len, 28);
        assert_eq!(h.source, "198.51.100.9:8080".parse().unwrap());
        assert!(matches!(parse_header(&v2_ipv4(0)), Err(ProxyHeaderError::NoSourceAddress)));
    }

    #[test]
    fn every_prefix_of_a_header_asks_for_more() {
        let v1 = b"PROXY TCP4 192.0.2.1 10.0.0.1 5000 3250\r\n".to_vec();
        for wire in [v1, v2_ipv4(1)] {
            for end in 0..wire.len() {
                assert_eq!(parse_header(&wire[..end]).unwrap(), None, "prefix {end}");
            }
        }
    }

    #[test]
    fn bad_headers_are_refused() {
        for wire in [
            &b"\x01\x00\x00\x02{}"[..],
            b"GET / HTTP/1.1\r\n",
            b"PROXY TCP4\r\n",
            b"PROXY TCP4 192.0.2.1 10.0.0.1 99999 1\r\n",
            b"PROXY TCP4 192.0.2.1 10.0.0.1 5000 3250\n",
        ] {
            assert!(matches!(parse_header(wire), Err(ProxyHeaderError::Malformed(_))), "{wire:?}");
        }
        let mut endless = b"PROXY TCP4 ".to_vec();
        endless.resize(107, b'1');
        assert!(matches!(parse_header(&endless), Err(ProxyHeaderError::Malformed(_))));
        assert_eq!(parse_header(&endless[..106]).unwrap(), None);
        assert!(matches!(
            parse_header(b"PROXY UNKNOWN\r\n"),
            Err(ProxyHeaderError::NoSourceAddress)
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) {
            let _ = parse_header(&bytes);
        }

        #[test]
        fn arbitrary_bytes_after_a_signature_never_panic(v2: bool, tail: Vec<u8>) {
            let mut wire = if v2 { v2::PROTOCOL_PREFIX.to_vec() } else { b"PROXY ".to_vec() };
            wire.extend(tail);
            let _ = parse_header(&wire);
        }

        #[test]
        fn any_valid_header_parses_whatever_follows(
            v4: bool, ip: [u8; 16], port: u16, v2: bool, tail: Vec<u8>,
        ) {
            let source = if v4 {
                SocketAddr::from(([ip[0], ip[1], ip[2], ip[3]], port))
            } else {
                SocketAddr::from((ip, port))
            };
            let destination: SocketAddr = if v4 { "10.0.0.1:3250" } else { "[::1]:3250" }
                .parse()
                .unwrap();
            let mut wire = if v2 {
                v2::Builder::with_addresses(0x21, v2::Protocol::Stream, (source, destination))
                    .build()
                    .unwrap()
            } else {
                v1::Addresses::from((source, destination)).to_string().into_bytes()
            };
            let len = wire.len();
            wire.extend(tail);
            let header = parse_header(&wire).unwrap().unwrap();
            proptest::prop_assert_eq!(header, ProxyHeader { len, source });
        }
    }

    #[tokio::test]
    async fn read_keeps_the_bytes_after_the_header() {
        let wire = b"PROXY TCP4 192.0.2.1 10.0.0.1 5000 3250\r\n\x03\x00\x00\x00";
        let (source, rest) = read_header(&mut &wire[..]).await.unwrap();
        assert_eq!(source, "192.0.2.1:5000".parse().unwrap());
        assert_eq!(&rest[..], b"\x03\x00\x00\x00");

        let err = read_header(&mut &b"PROXY TCP4 1.2"[..]).await.unwrap_err();
        assert!(matches!(err, crate::AcceptError::ProxyHeader(ProxyHeaderError::UnexpectedEof)));
    }
}
