//! Fixtures shared by the `codec` (Criterion) and `instructions` (callgrind) benches.
//!
//! Both benches build their cases from this one matrix so that a wall-clock figure and an
//! instruction count with the same name always measure the same code on the same bytes.
//! It lives in `benches/common/mod.rs` rather than `benches/common.rs` so that Cargo does
//! not auto-discover it as a bench target of its own.

use std::fmt;
use std::hint::black_box;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use pitaya_codec::{Message, MessageCodec, PacketDecoder, RouteDict};

/// Payload of the small cases: one player's state update, the bulk of a game's traffic.
/// Compact JSON this short shrinks under zlib (to about 57 bytes) only because its keys
/// and numbers repeat, which is why it was picked: the zlib cases must actually carry
/// compressed data.
const SMALL_PAYLOAD: &str = r#"{"pos":{"x":104,"y":200},"dst":{"x":100,"y":208},"hp":99,"mp":7}"#;
const _: () = assert!(SMALL_PAYLOAD.len() == 64);
const LARGE_LEN: usize = 64 * 1024;

// A client request (id and route on the wire) for the small case, a server push (route,
// no id) of a whole room snapshot for the large one: the two shapes that dominate a game
// server's traffic at either end of the size range.
const SMALL_ROUTE: &str = "room.room.move";
const SMALL_ID: u64 = 4242;
const LARGE_ROUTE: &str = "room.room.snapshot";

/// Spec §2.4: set on messages whose data is zlib-compressed.
const DATA_COMPRESSED: u8 = 0x10;

/// What a case does with the codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `MessageCodec::encode` into a reused buffer (a connection's write buffer).
    Encode,
    /// `MessageCodec::decode` of one message body.
    Decode,
    /// `encode_packet`, `PacketDecoder::decode`, `MessageCodec::decode`: one message from
    /// sender to receiver through the framing, as the server's agent sees it.
    Roundtrip,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Encode => "encode",
            Self::Decode => "decode",
            Self::Roundtrip => "roundtrip",
        })
    }
}

/// Message size class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Size {
    /// 64-byte payload.
    Small,
    /// 64 KiB payload.
    Large,
}

impl Size {
    /// Payload bytes, for `Throughput::Bytes`.
    pub(crate) fn payload_len(self) -> usize {
        match self {
            Self::Small => SMALL_PAYLOAD.len(),
            Self::Large => LARGE_LEN,
        }
    }

    fn message(self) -> Message {
        match self {
            Self::Small => Message::request(SMALL_ID, SMALL_ROUTE, SMALL_PAYLOAD),
            Self::Large => Message::push(LARGE_ROUTE, large_payload()),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Small => "small",
            Self::Large => "large",
        })
    }
}

/// Codec settings: route dictionary on or off, zlib data compression on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Config {
    /// The route is in the dictionary and travels as a u16 code instead of a string.
    pub(crate) dict: bool,
    /// `pitaya.handler.messages.compression`: data is deflated when that shrinks it.
    pub(crate) zlib: bool,
}

/// Every combination, plain first: it is the reference the others are compared with.
pub(crate) const CONFIGS: [Config; 4] = [
    Config { dict: false, zlib: false },
    Config { dict: true, zlib: false },
    Config { dict: false, zlib: true },
    Config { dict: true, zlib: true },
];

impl Config {
    fn codec(self, route: &str) -> MessageCodec {
        // Threshold 0: the zlib cases measure deflate itself, also on the 64-byte payload
        // that the default threshold (128 bytes) sends uncompressed.
        let mut codec =
            MessageCodec::new().with_data_compression(self.zlib).with_min_compress_len(0);
        if self.dict {
            // Only the route under test: a SwissTable lookup costs the same whatever else
            // the table holds, except when another entry's 7-bit tag collides with this
            // one, which depends on the per-process random SipHash keys and would make
            // callgrind counts differ from one run to the next.
            let dict = RouteDict::from_entries([(route, 1)]).expect("one entry is no duplicate");
            codec = codec.with_dict(Arc::new(dict));
        }
        codec
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.dict, self.zlib) {
            (false, false) => "plain",
            (true, false) => "dict",
            (false, true) => "zlib",
            (true, true) => "dict+zlib",
        })
    }
}

/// One bench case: `op/size/config`, e.g. `decode/large/dict+zlib`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Case {
    pub(crate) op: Op,
    pub(crate) size: Size,
    pub(crate) config: Config,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.op, self.size, self.config)
    }
}

/// Every case, grouped by operation and size. The packet round trip is only measured for
/// small messages: for large ones it is the encode plus the decode plus one memcpy.
pub(crate) fn cases() -> Vec<Case> {
    let groups = [
        (Op::Encode, Size::Small),
        (Op::Decode, Size::Small),
        (Op::Encode, Size::Large),
        (Op::Decode, Size::Large),
        (Op::Roundtrip, Size::Small),
    ];
    groups
        .into_iter()
        .flat_map(|(op, size)| CONFIGS.map(|config| Case { op, size, config }))
        .collect()
}

/// Everything a case needs, built before measuring starts.
pub(crate) struct Fixture {
    codec: MessageCodec,
    message: Message,
    /// `message` encoded by `codec`: the input of the decode cases.
    encoded: Bytes,
    /// Reused output buffer, sized up front so the first iteration does not pay for growth.
    buf: BytesMut,
}

impl Fixture {
    /// Builds the codec, the message and its encoding for `case`.
    ///
    /// # Panics
    /// When a zlib case would not carry compressed data: it would silently measure the
    /// uncompressed path.
    pub(crate) fn new(case: Case) -> Self {
        let message = case.size.message();
        let route = if case.size == Size::Small { SMALL_ROUTE } else { LARGE_ROUTE };
        let codec = case.config.codec(route);
        let mut buf = BytesMut::with_capacity(case.size.payload_len() + 64);
        codec.encode(&message, &mut buf).expect("bench messages encode");
        let encoded = buf.split().freeze();
        let compressed = encoded.first().is_some_and(|flag| flag & DATA_COMPRESSED != 0);
        assert_eq!(compressed, case.config.zlib, "{case}: zlib flag on the wire");
        Self { codec, message, encoded, buf }
    }

    /// Runs the case's operation once; what it produces goes through `black_box` so that
    /// the optimiser cannot drop the work.
    #[inline]
    pub(crate) fn run(&mut self, op: Op) {
        match op {
            Op::Encode => self.encode(),
            Op::Decode => {
                black_box(self.decode());
            }
            Op::Roundtrip => {
                black_box(self.roundtrip());
            }
        }
    }

    fn encode(&mut self) {
        self.buf.clear();
        black_box(&self.codec)
            .encode(black_box(&self.message), &mut self.buf)
            .expect("bench messages encode");
        black_box(&self.buf);
    }

    /// Cloning the body is a reference-count bump, as when a reader hands a packet body on.
    fn decode(&self) -> Message {
        black_box(&self.codec).decode(black_box(&self.encoded).clone()).expect("decodes")
    }

    fn roundtrip(&mut self) -> Message {
        self.buf.clear();
        let codec = black_box(&self.codec);
        codec.encode_packet(black_box(&self.message), &mut self.buf).expect("encodes");
        let packet = PacketDecoder::default()
            .decode(&mut self.buf)
            .expect("valid packet")
            .expect("whole packet");
        codec.decode(packet.body).expect("decodes")
    }

    /// Checks that the case measures a real round trip, not an error path.
    pub(crate) fn check(&mut self) {
        assert_eq!(self.decode(), self.message, "decode(encode(m)) == m");
        assert_eq!(self.roundtrip(), self.message, "packet round trip");
    }
}

/// A 64 KiB room snapshot: a JSON array of player records with pseudo-random positions
/// and stats. The values vary (a fixed LCG keeps them the same on every run) so that zlib
/// sees the ratio of real game state, about 5:1, rather than a single record repeated.
fn large_payload() -> Bytes {
    const STATES: [&str; 4] = ["idle", "moving", "attacking", "dead"];
    let mut seed: u32 = 0x2545_F491;
    let mut next = |modulo: u32| {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) % modulo
    };
    let mut json = String::with_capacity(LARGE_LEN);
    json.push_str(r#"{"tick":48213,"players":["#);
    for id in 1.. {
        let (x, y, hp, state) = (next(4096), next(4096), next(101), next(4));
        let state = STATES.get(state as usize).copied().unwrap_or("idle");
        let record = format!(
            r#"{{"id":{id},"name":"player-{id:05}","x":{x},"y":{y},"hp":{hp},"state":"{state}"}}"#
        );
        // One byte for the comma, two for the closing `]}`.
        if json.len() + 1 + record.len() + 2 > LARGE_LEN {
            break;
        }
        if id > 1 {
            json.push(',');
        }
        json.push_str(&record);
    }
    // Pad to the exact size with insignificant whitespace, keeping the JSON valid.
    json.extend(std::iter::repeat_n(' ', LARGE_LEN - 2 - json.len()));
    json.push_str("]}");
    assert_eq!(json.len(), LARGE_LEN);
    json.into()
}
