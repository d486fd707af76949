//! The Pitaya handshake on a fresh transport: request, response, ack (spec §1.3–§1.5).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pitaya_codec::handshake::CODE_OK;
use pitaya_codec::{
    HandshakeResponse, MessageCodec, PacketType, ResumeRequest, RouteDict, encode_packet,
};
use pitaya_serialize::{Serializer, SerializerKind};

use crate::ClientError;
use crate::ClientOptions;
use crate::transport::{PacketSink, PacketSource};

/// What the handshake settles for the rest of the connection.
pub(crate) struct Session {
    pub(crate) response: HandshakeResponse,
    pub(crate) codec: MessageCodec,
    pub(crate) serializer: Arc<dyn Serializer>,
    /// The heartbeat interval to use; zero for none.
    pub(crate) heartbeat: Duration,
    /// Heartbeats that arrived before the handshake response (spec §1.6).
    pub(crate) heartbeats: u64,
}

/// Longest heartbeat interval taken at face value. Beyond it (a day; Pitaya's default is
/// 30 s) timer arithmetic could overflow, so the client neither sends heartbeats nor
/// watches for the server's.
const MAX_HEARTBEAT: Duration = Duration::from_secs(24 * 60 * 60);

/// Sends the handshake, reads the response, checks it and acknowledges it.
///
/// `resume`, when set, replaces `sys.resume` of the configured handshake; otherwise the
/// configured handshake goes out as is.
///
/// No timeout here: the caller bounds the whole connect.
///
/// # Errors
/// [`ClientError::HandshakeRejected`] for a code other than 200, and
/// [`ClientError::Handshake`] when the server closes, kicks, sends another packet first,
/// or sends a response or dictionary that does not parse.
pub(crate) async fn perform(
    source: &mut PacketSource,
    sink: &mut PacketSink,
    opts: &ClientOptions,
    resume: Option<ResumeRequest>,
) -> Result<Session, ClientError> {
    let failed = |what: String| ClientError::Handshake(what);
    let body = match resume {
        Some(resume) => {
            let mut request = opts.handshake.clone();
            request.sys.resume = Some(resume);
            request.encode()
        }
        None => opts.handshake.encode(),
    };
    sink.send(packet(PacketType::Handshake, &body)?)
        .await
        .map_err(|e| failed(format!("sending the handshake: {e}")))?;
    let mut heartbeats = 0;
    let response = loop {
        let packet = source
            .next()
            .await
            .map_err(|e| failed(format!("reading the handshake response: {e}")))?
            .ok_or_else(|| failed("the server closed before answering the handshake".into()))?;
        match packet.kind {
            // A compressed response carries no flag; decode detects the zlib/gzip magic.
            PacketType::Handshake => {
                break HandshakeResponse::decode(&packet.body, opts.max_body_len)
                    .map_err(|e| failed(e.to_string()))?;
            }
            // The server's heartbeat ticker starts at accept, before any handshake.
            PacketType::Heartbeat => heartbeats += 1,
            PacketType::Kick => return Err(failed("kicked before the handshake response".into())),
            other => {
                return Err(failed(format!("{other:?} packet before the handshake response")));
            }
        }
    };
    if response.code != CODE_OK {
        return Err(ClientError::HandshakeRejected { code: response.code });
    }
    let codec = codec(&response, opts)?;
    let serializer = serializer(&response.sys.serializer);
    let mut heartbeat = response.sys.heartbeat;
    if heartbeat > MAX_HEARTBEAT {
        tracing::warn!(?heartbeat, "absurd heartbeat interval, heartbeats disabled");
        heartbeat = Duration::ZERO;
    }
    sink.send(packet(PacketType::HandshakeAck, &[])?)
        .await
        .map_err(|e| failed(format!("sending the handshake ack: {e}")))?;
    Ok(Session { response, codec, serializer, heartbeat, heartbeats })
}

fn packet(kind: PacketType, body: &[u8]) -> Result<Bytes, ClientError> {
    let mut buf = BytesMut::new();
    encode_packet(kind, body, &mut buf).map_err(|e| ClientError::Handshake(e.to_string()))?;
    Ok(buf.freeze())
}

fn codec(response: &HandshakeResponse, opts: &ClientOptions) -> Result<MessageCodec, ClientError> {
    let codec = MessageCodec::new()
        .with_data_compression(opts.compress_requests)
        .with_max_inflated_len(opts.max_body_len);
    if !opts.use_dict || response.sys.dict.is_empty() {
        return Ok(codec);
    }
    let dict = RouteDict::from_entries(response.sys.dict.iter().map(|(r, c)| (r.as_str(), *c)))
        .map_err(|e| ClientError::Handshake(format!("bad route dictionary: {e}")))?;
    Ok(codec.with_dict(Arc::new(dict)))
}

/// The announced serializer. Go apps may plug in serializers of their own; their error
/// payloads are most likely JSON, so an unknown name falls back to JSON.
fn serializer(name: &str) -> Arc<dyn Serializer> {
    let kind = name.parse::<SerializerKind>().unwrap_or_else(|_| {
        tracing::warn!(serializer = name, "unknown serializer, reading errors as json");
        SerializerKind::Json
    });
    kind.serializer()
}
