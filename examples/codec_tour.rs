//! A tour of the wire codec: the bytes of one client session, built and read back with
//! `pitaya-codec` and `pitaya-serialize`, no network involved.
//!
//! Run it with `cargo run --example codec_tour`.

#![expect(clippy::print_stdout, reason = "an example that explains itself on stdout")]

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bytes::BytesMut;
use pitaya_codec::{
    ClientInfo, HandshakeRequest, HandshakeResponse, Message, MessageCodec, Packet, PacketDecoder,
    PacketType, RouteDict,
};
use pitaya_examples::hex;
use pitaya_serialize::{ErrorPayload, Json, Serializer};

fn main() -> Result<()> {
    let dict = Arc::new(RouteDict::from_entries([("chat.room.join", 1), ("onMessage", 2)])?);
    let server = MessageCodec::new().with_dict(dict.clone()).with_data_compression(true);
    let client = MessageCodec::new().with_dict(dict.clone());
    let mut wire = BytesMut::new();

    let hello = HandshakeRequest {
        sys: ClientInfo {
            platform: "rust".into(),
            lib_version: "0.1.0".into(),
            ..Default::default()
        },
        user: None,
    };
    emit(&mut wire, "client → server: handshake request", |w| {
        Ok(Packet::new(PacketType::Handshake, hello.encode()).encode(w)?)
    })?;

    let response =
        HandshakeResponse::new(200, Duration::from_secs(30), dict.to_sorted_map(), Json.name());
    emit(&mut wire, "server → client: handshake response (never compressed)", |w| {
        Ok(Packet::new(PacketType::Handshake, response.encode()).encode(w)?)
    })?;

    emit(&mut wire, "client → server: handshake ack", |w| {
        Ok(Packet::empty(PacketType::HandshakeAck).encode(w)?)
    })?;

    emit(&mut wire, "client → server: request 1, its route sent as dictionary code 1", |w| {
        let join = Message::request(1, "chat.room.join", &br#"{"name":"ana"}"#[..]);
        Ok(client.encode_packet(&join, w)?)
    })?;

    let history: Vec<_> =
        (0..20).map(|i| format!(r#"{{"from":"bob","text":"hello {i}"}}"#)).collect();
    let body = format!("[{}]", history.join(","));
    emit(
        &mut wire,
        &format!("server → client: a push of {} JSON bytes, zlib-compressed", body.len()),
        |w| Ok(server.encode_packet(&Message::push("onMessage", body.clone()), w)?),
    )?;

    emit(&mut wire, "server → client: an error response to request 2", |w| {
        let error = ErrorPayload::new("PIT-404", "pitaya/handler: chat.room.leave not found");
        Ok(server.encode_packet(&Message::error_response(2, Json.encode_error(&error)), w)?)
    })?;

    println!("\nThe same stream read back as a client reads it:");
    let decoder = PacketDecoder::default();
    while let Some(packet) = decoder.decode(&mut wire)? {
        if packet.kind != PacketType::Data {
            println!("  {:?} packet, {} body bytes", packet.kind, packet.body.len());
            continue;
        }
        let msg = client.decode(packet.body)?;
        let text: String = String::from_utf8_lossy(&msg.data).chars().take(56).collect();
        println!(
            "  {:?} id={} route={:?} error={} data={text}",
            msg.kind, msg.id, msg.route, msg.error
        );
    }
    Ok(())
}

/// Appends one packet with `write` and prints its bytes (the first 48 of them).
fn emit(
    wire: &mut BytesMut,
    what: &str,
    write: impl FnOnce(&mut BytesMut) -> Result<()>,
) -> Result<()> {
    let start = wire.len();
    write(wire)?;
    let bytes = wire.get(start..).unwrap_or_default();
    let shown = bytes.get(..48).unwrap_or(bytes);
    let more = if shown.len() < bytes.len() { " …" } else { "" };
    println!("{what}\n  {} bytes: {}{more}", bytes.len(), hex(shown));
    Ok(())
}
