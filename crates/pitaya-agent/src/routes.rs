//! [`ClientRoutes`]: whether the routes sent to one client may be dictionary codes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pitaya_codec::MessageCodec;

/// Bit 0 of a message's flag byte: the route is a 2-byte dictionary code (spec §2.3).
const ROUTE_COMPRESSED: u8 = 0x01;

/// One connection's route compression when `compressroutes.onlyifclientdoes` is on: the
/// routes it is sent stay full strings until the client itself sends a message whose
/// route is a code, which proves it reads the dictionary. Connections of a server with
/// the setting off have none of this, and send codes as Go does.
#[derive(Debug)]
pub(crate) struct ClientRoutes {
    /// Set once, by the reader; read by the writer for every message. Relaxed is enough:
    /// a push caused by the client's message is queued after the store (same task, or
    /// through the dispatch channel) and the writer takes it from the outgoing channel,
    /// so the writer's load happens after the store and sees it.
    client_compresses: AtomicBool,
    /// The server's codec without its dictionary, so routes go out as strings.
    plain: MessageCodec,
}

impl ClientRoutes {
    /// For a connection of a server whose codec is `codec`.
    pub(crate) fn new(codec: &MessageCodec) -> Arc<Self> {
        Arc::new(Self {
            client_compresses: AtomicBool::new(false),
            plain: codec.clone().with_dict(Arc::default()),
        })
    }

    /// Notes the flag byte of a request or notify the client sent. Cheap: after the
    /// first compressed route, a load and nothing else.
    pub(crate) fn saw(&self, flag: u8) {
        if flag & ROUTE_COMPRESSED != 0 && !self.client_compresses.load(Ordering::Relaxed) {
            self.client_compresses.store(true, Ordering::Relaxed);
            tracing::debug!("client sent a compressed route; routes to it are codes from now on");
        }
    }

    /// The codec for the next message to this client: `full` (with the dictionary) once
    /// the client compressed a route, else the one without dictionary.
    pub(crate) fn codec<'a>(&'a self, full: &'a MessageCodec) -> &'a MessageCodec {
        if self.client_compresses.load(Ordering::Relaxed) { full } else { &self.plain }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use pitaya_codec::{Message, RouteDict};

    use super::*;

    fn encoded(codec: &MessageCodec) -> Vec<u8> {
        let mut out = BytesMut::new();
        codec.encode(&Message::push("onMessage", &b"hi"[..]), &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn routes_are_strings_until_the_client_sends_a_code() {
        let dict = RouteDict::from_entries([("onMessage", 0x0102)]).unwrap();
        let full = MessageCodec::new().with_dict(Arc::new(dict));
        let routes = ClientRoutes::new(&full);
        assert_eq!(encoded(routes.codec(&full)), b"\x06\x09onMessagehi");
        // A request (0x00) and a notify (0x02) with full routes change nothing.
        routes.saw(0x00);
        routes.saw(0x02);
        assert_eq!(encoded(routes.codec(&full)), b"\x06\x09onMessagehi");
        // A notify with a code (0x03) does, for good.
        routes.saw(0x03);
        assert_eq!(encoded(routes.codec(&full)), [0x07, 0x01, 0x02, b'h', b'i']);
        routes.saw(0x02);
        assert_eq!(encoded(routes.codec(&full)), [0x07, 0x01, 0x02, b'h', b'i']);
    }

    #[test]
    fn the_plain_codec_keeps_data_compression() {
        let full = MessageCodec::new().with_data_compression(true).with_min_compress_len(0);
        let routes = ClientRoutes::new(&full);
        assert!(routes.codec(&full).data_compression());
    }
}
