//! `pitaya.handler.messages.compressroutes.onlyifclientdoes`: pushes keep full routes
//! toward a client that never sent a route code (libpitaya ignores `sys.dict`), and use
//! codes, as Go always does, toward one that did.

use pitaya::Builder;
use pitaya::codec::PacketType;
use pitaya_examples::echo::ROUTES;

use crate::support::{Raw, Server, config, echo_builder, packet, within};

const KEY: &str = "pitaya.handler.messages.compressroutes.onlyifclientdoes";

/// The echo app with every route and push route in the dictionary, codes from 1, data
/// compression off so the bytes are exact.
fn builder(overrides: &[(&str, &str)]) -> Builder {
    let mut all = vec![("pitaya.handler.messages.compression", "false")];
    all.extend_from_slice(overrides);
    let routes = ROUTES.iter().copied().chain(["onNotify", "onMessage"]);
    echo_builder(config(&all)).dictionary(routes.zip(1u16..))
}

/// The code `route` has in [`builder`]'s dictionary.
fn code(route: &str) -> [u8; 2] {
    let index = ROUTES.iter().copied().chain(["onNotify", "onMessage"]).position(|r| r == route);
    let index = u16::try_from(index.expect("a route of the dictionary")).expect("few routes");
    (index + 1).to_be_bytes()
}

/// A push with a full route, uncompressed data (flag 0x06).
fn full_push(route: &str, data: &[u8]) -> Vec<u8> {
    let mut body = vec![0x06, u8::try_from(route.len()).expect("a short route")];
    body.extend_from_slice(route.as_bytes());
    body.extend_from_slice(data);
    body
}

/// A push whose route is its code (flag 0x07), as Go sends any route of the dictionary.
fn coded_push(route: &str, data: &[u8]) -> Vec<u8> {
    let [hi, lo] = code(route);
    let mut body = vec![0x07, hi, lo];
    body.extend_from_slice(data);
    body
}

/// The body of the next data packet.
async fn next_body(raw: &mut Raw) -> Vec<u8> {
    let packet = raw.frame().await.expect("a packet, not a close");
    assert_eq!(packet.kind, PacketType::Data, "expected a data packet, got {packet:?}");
    packet.body.to_vec()
}

/// Joins `room` with a full route and gets an `onNotify` push back.
async fn join_with_full_routes(raw: &mut Raw) -> Vec<u8> {
    raw.handshake().await;
    raw.request(1, "room.join", b"").await;
    assert_eq!(raw.message().await.id, 1);
    raw.notify("room.notify", b"a").await;
    next_body(raw).await
}

/// Joins `room` with a route code (request flag 0x01) and gets an `onNotify` push back
/// for a notify sent with a code too (flag 0x03).
async fn join_with_codes(raw: &mut Raw) -> Vec<u8> {
    raw.handshake().await;
    let [hi, lo] = code("room.join");
    raw.send(&packet(0x04, &[0x01, 0x01, hi, lo])).await;
    assert_eq!(raw.message().await.id, 1);
    let [hi, lo] = code("room.notify");
    raw.send(&packet(0x04, &[0x03, hi, lo, b'b'])).await;
    next_body(raw).await
}

#[tokio::test]
async fn on_pushes_keep_full_routes_until_the_client_sends_a_code() {
    within(async {
        let server = Server::start(builder(&[]).compress_routes_only_if_client_does(true)).await;
        let mut lib = server.raw().await;
        let mut js = server.raw().await;
        assert_eq!(join_with_full_routes(&mut lib).await, full_push("onNotify", b"a"));
        assert_eq!(join_with_codes(&mut js).await, coded_push("onNotify", b"b"));

        // One broadcast, encoded per client.
        lib.notify("room.message", b"hi").await;
        assert_eq!(next_body(&mut lib).await, full_push("onMessage", b"hi"));
        assert_eq!(next_body(&mut js).await, coded_push("onMessage", b"hi"));

        // A client that switches to codes later gets codes from then on.
        let [hi, lo] = code("room.message");
        lib.send(&packet(0x04, &[0x03, hi, lo, b'!'])).await;
        assert_eq!(next_body(&mut lib).await, coded_push("onMessage", b"!"));
        assert_eq!(next_body(&mut js).await, coded_push("onMessage", b"!"));
        lib.notify("room.notify", b"c").await;
        assert_eq!(next_body(&mut lib).await, coded_push("onNotify", b"c"), "for good");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn off_by_default_every_push_uses_codes_as_go_does() {
    within(async {
        let server = Server::start(builder(&[])).await;
        let mut lib = server.raw().await;
        let mut js = server.raw().await;
        assert_eq!(join_with_full_routes(&mut lib).await, coded_push("onNotify", b"a"));
        assert_eq!(join_with_codes(&mut js).await, coded_push("onNotify", b"b"));
        lib.notify("room.message", b"hi").await;
        // Go's bytes: flag 0x07, the code, the data.
        let [hi, lo] = code("onMessage");
        assert_eq!(next_body(&mut lib).await, [0x07, hi, lo, b'h', b'i']);
        assert_eq!(next_body(&mut js).await, [0x07, hi, lo, b'h', b'i']);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn the_config_key_turns_it_on_and_the_builder_overrides_it() {
    within(async {
        let on = Server::start(builder(&[(KEY, "true")])).await;
        let mut lib = on.raw().await;
        assert_eq!(join_with_full_routes(&mut lib).await, full_push("onNotify", b"a"));
        on.shutdown().await;

        let off = builder(&[(KEY, "true")]).compress_routes_only_if_client_does(false);
        let off = Server::start(off).await;
        let mut lib = off.raw().await;
        assert_eq!(join_with_full_routes(&mut lib).await, coded_push("onNotify", b"a"));
        off.shutdown().await;
    })
    .await;
}
