//! [`TextAsBinary`]: a socket wrapper that turns incoming WebSocket text frames into
//! binary frames before tungstenite parses them.
//!
//! spec §4.2: Go (gorilla) reads a text message like a binary one and never checks that
//! its payload is UTF-8. tungstenite has no switch for its UTF-8 check, and a text
//! message that fails it ends the connection with the payload lost. Relabelling the
//! frame on the way in keeps tungstenite for everything else (masking, fragmentation,
//! control frames, size limits) while text payloads reach the reader untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Low nibble of a frame's first byte: the opcode (RFC 6455 §5.2).
const OPCODE_MASK: u8 = 0x0F;
const OPCODE_TEXT: u8 = 0x1;
const OPCODE_BINARY: u8 = 0x2;

/// Wraps the server side of a WebSocket connection, HTTP upgrade request included.
///
/// Reads pass through unchanged until the end of the HTTP request head; after it, the
/// opcode of every text data frame read is rewritten to binary. Continuation and
/// control frames are left alone, so a fragmented text message becomes a fragmented
/// binary one. Writes pass through unchanged.
///
/// The frame tracking only follows lengths: a stream that is not valid WebSocket is
/// still refused by tungstenite, which sees the same bytes (only opcodes 1 become 2).
pub(crate) struct TextAsBinary<S> {
    inner: S,
    rewriter: OpcodeRewriter,
}

impl<S> TextAsBinary<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self { inner, rewriter: OpcodeRewriter::default() }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TextAsBinary<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        // `before` is at most the filled length, which a read never shrinks.
        if let Some(fresh) = buf.filled_mut().get_mut(before..) {
            this.rewriter.rewrite(fresh);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TextAsBinary<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Sans-IO part of [`TextAsBinary`]: fed the bytes read, in order and in any split.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OpcodeRewriter {
    /// In the HTTP request head. `newlines` counts the line ends just seen, ignoring a
    /// `\r` before a `\n`: two in a row end the head, as httparse (tungstenite's
    /// parser) accepts both `\r\n\r\n` and `\n\n`.
    Request { newlines: u8, after_cr: bool },
    /// At byte `at` of a frame header. Once byte 1 is seen, `len` is the header's full
    /// length (2 before that), bytes `2..extended_end` hold the extended payload length
    /// and `payload` is the payload length read so far.
    Header { at: u8, extended_end: u8, len: u8, payload: u64 },
    /// Inside a frame payload.
    Payload { remaining: u64 },
}

impl Default for OpcodeRewriter {
    fn default() -> Self {
        Self::Request { newlines: 0, after_cr: false }
    }
}

impl OpcodeRewriter {
    fn rewrite(&mut self, bytes: &mut [u8]) {
        let mut i = 0;
        while let Some(byte) = bytes.get_mut(i) {
            match self {
                Self::Request { newlines, after_cr } => {
                    match *byte {
                        b'\n' => *newlines += 1,
                        b'\r' if !*after_cr => {
                            *after_cr = true;
                            i += 1;
                            continue;
                        }
                        _ => *newlines = 0,
                    }
                    *after_cr = false;
                    if *newlines >= 2 {
                        *self = Self::frame_start();
                    }
                    i += 1;
                }
                Self::Header { at, extended_end, len, payload } => {
                    match *at {
                        0 if *byte & OPCODE_MASK == OPCODE_TEXT => {
                            *byte = (*byte & !OPCODE_MASK) | OPCODE_BINARY;
                        }
                        0 => {}
                        1 => {
                            let short = *byte & 0x7F;
                            let extended = match short {
                                126 => 2,
                                127 => 8,
                                _ => 0,
                            };
                            let mask = if *byte & 0x80 != 0 { 4 } else { 0 };
                            *extended_end = 2 + extended;
                            *len = *extended_end + mask;
                            *payload = if extended == 0 { u64::from(short) } else { 0 };
                        }
                        // Extended length bytes, big-endian; the mask key after them does
                        // not change the length.
                        n if n < *extended_end => {
                            *payload = (*payload << 8) | u64::from(*byte);
                        }
                        _ => {}
                    }
                    *at += 1;
                    i += 1;
                    if *at >= *len {
                        *self = match *payload {
                            0 => Self::frame_start(),
                            remaining => Self::Payload { remaining },
                        };
                    }
                }
                Self::Payload { remaining } => {
                    let left = bytes.len() - i;
                    // Compare in u64: a payload may be longer than usize on 32-bit.
                    if *remaining > left as u64 {
                        *remaining -= left as u64;
                        return;
                    }
                    // `remaining` fits in usize here: it is at most `left`.
                    i += *remaining as usize;
                    *self = Self::frame_start();
                }
            }
        }
    }

    fn frame_start() -> Self {
        Self::Header { at: 0, extended_end: 2, len: 2, payload: 0 }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n";

    /// A masked client frame with the given first byte and payload (mask key 0, so
    /// the payload is sent as is).
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        match payload.len() {
            n @ 0..126 => out.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend((n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend((n as u64).to_be_bytes());
            }
        }
        out.extend([0, 0, 0, 0]);
        out.extend(payload);
        out
    }

    fn rewritten(input: &[u8], splits: &[usize]) -> Vec<u8> {
        let mut out = input.to_vec();
        let mut rewriter = OpcodeRewriter::default();
        let mut start = 0;
        for &split in splits.iter().chain([&out.len()]) {
            let end = split.clamp(start, out.len());
            rewriter.rewrite(&mut out[start..end]);
            start = end;
        }
        out
    }

    #[test]
    fn text_frames_become_binary_after_the_request_only() {
        // Payloads that look like text frame headers must not be touched.
        let body = [0x81, 0x01, 0xFF, 0xFE];
        let mut input = REQUEST.to_vec();
        input.extend(frame(0x81, &body));
        input.extend(frame(0x01, &body)); // first fragment of a text message
        input.extend(frame(0x80, &body)); // its continuation
        input.extend(frame(0x89, &body)); // ping
        input.extend(frame(0x82, &[0x81; 300]));
        input.extend(frame(0x81, &[]));
        input.extend(frame(0x81, &[0x81; 70_000]));

        let mut expected = REQUEST.to_vec();
        expected.extend(frame(0x82, &body));
        expected.extend(frame(0x02, &body));
        expected.extend(frame(0x80, &body));
        expected.extend(frame(0x89, &body));
        expected.extend(frame(0x82, &[0x81; 300]));
        expected.extend(frame(0x82, &[]));
        expected.extend(frame(0x82, &[0x81; 70_000]));
        assert_eq!(rewritten(&input, &[]), expected);
    }

    #[test]
    fn bare_newlines_end_the_request_too() {
        let mut input = b"GET / HTTP/1.1\nHost: x\n\n".to_vec();
        input.extend(frame(0x81, b"\xFF"));
        let out = rewritten(&input, &[]);
        assert_eq!(out.get(24), Some(&0x82));
    }

    #[test]
    fn request_bytes_are_never_changed() {
        // A text frame header byte inside the request head stays as it is.
        let input = b"GET /\x81 HTTP/1.1\r\nHost: \x81\r\n".to_vec();
        assert_eq!(rewritten(&input, &[]), input);
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_bytes(
            payloads in proptest::collection::vec(
                (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300)),
                0..8,
            ),
            splits in proptest::collection::vec(0usize..3000, 0..12),
        ) {
            let mut input = REQUEST.to_vec();
            for (text, payload) in &payloads {
                input.extend(frame(if *text { 0x81 } else { 0x82 }, payload));
            }
            let mut splits = splits;
            splits.sort_unstable();
            let whole = rewritten(&input, &[]);
            prop_assert_eq!(rewritten(&input, &splits), whole.clone());
            let mut expected = REQUEST.to_vec();
            for (_, payload) in &payloads {
                expected.extend(frame(0x82, payload));
            }
            prop_assert_eq!(whole, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
            split in 0usize..2000,
        ) {
            let _ = rewritten(&bytes, &[split]);
        }
    }
}
