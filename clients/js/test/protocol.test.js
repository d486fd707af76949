// The sans-IO codec against the byte layouts of the protocol spec (sections 1 and 2).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  MessageType,
  PacketType,
  ProtocolError,
  compressionOf,
  decodeMessage,
  decodePackets,
  deflate,
  encodeMessage,
  encodePacket,
  inflate,
  utf8,
} from '../src/protocol.js';
import { decodeProtoError } from '../src/client.js';

const hex = (bytes) => Buffer.from(bytes).toString('hex').replace(/(..)(?!$)/g, '$1 ');

test('canonical empty packets', () => {
  assert.equal(hex(encodePacket(PacketType.HEARTBEAT)), '03 00 00 00');
  assert.equal(hex(encodePacket(PacketType.HANDSHAKE_ACK)), '02 00 00 00');
  assert.equal(hex(encodePacket(PacketType.KICK)), '05 00 00 00');
});

test('packet length is 24-bit big-endian and bodies above 0xFFFFFF are refused', () => {
  const body = new Uint8Array(0x010203);
  const packet = encodePacket(PacketType.DATA, body);
  assert.equal(hex(packet.subarray(0, 4)), '04 01 02 03');
  assert.equal(packet.length, 4 + 0x010203);
  assert.throws(() => encodePacket(PacketType.DATA, new Uint8Array(0x1000000)), ProtocolError);
});

test('one message may hold several packets; bad ones are errors', () => {
  const bytes = new Uint8Array([3, 0, 0, 0, 4, 0, 0, 2, 0xaa, 0xbb, 5, 0, 0, 0]);
  const packets = decodePackets(bytes);
  assert.deepEqual(
    packets.map((p) => [p.type, hex(p.body)]),
    [
      [PacketType.HEARTBEAT, ''],
      [PacketType.DATA, 'aa bb'],
      [PacketType.KICK, ''],
    ],
  );
  assert.throws(() => decodePackets(new Uint8Array([6, 0, 0, 0])), /unknown packet type 0x6/);
  assert.throws(() => decodePackets(new Uint8Array([0, 0, 0, 0])), /unknown packet type/);
  assert.throws(() => decodePackets(new Uint8Array([4, 0, 0, 3, 1])), /truncated/);
  assert.throws(() => decodePackets(new Uint8Array([4, 0])), /truncated packet header/);
});

test('request and notify layouts, with plain and dictionary routes', () => {
  const data = utf8('{}');
  assert.equal(
    hex(encodeMessage({ type: MessageType.REQUEST, id: 1, route: 'room.join', data })),
    '00 01 09 72 6f 6f 6d 2e 6a 6f 69 6e 7b 7d',
  );
  // Spec §2.2: 300 → AC 02.
  assert.equal(
    hex(encodeMessage({ type: MessageType.REQUEST, id: 300, route: 'a.b' })),
    '00 ac 02 03 61 2e 62',
  );
  const dict = new Map([['room.join', 0x0102]]);
  assert.equal(
    hex(encodeMessage({ type: MessageType.REQUEST, id: 129, route: 'room.join', data }, dict)),
    '01 81 01 01 02 7b 7d',
  );
  assert.equal(hex(encodeMessage({ type: MessageType.NOTIFY, route: 'room.join' }, dict)), '03 01 02');
  assert.equal(
    hex(encodeMessage({ type: MessageType.NOTIFY, route: 'a.b', data, compressed: true })),
    '12 03 61 2e 62 7b 7d',
  );
});

test('encoding refuses what the server would mangle or drop', () => {
  assert.throws(() => encodeMessage({ type: MessageType.NOTIFY, route: 'x'.repeat(256) }), ProtocolError);
  assert.throws(() => encodeMessage({ type: MessageType.NOTIFY, route: '' }), ProtocolError);
  // Id 0 means "notify" to the server, which would never answer it (spec §2.2).
  assert.throws(() => encodeMessage({ type: MessageType.REQUEST, id: 0, route: 'a.b' }), ProtocolError);
});

test('response and push flags decode as the server emits them', () => {
  const codes = new Map([[7, 'onMessage']]);
  const response = decodeMessage(new Uint8Array([0x24, 0xac, 0x02, 0x7b, 0x7d]));
  assert.deepEqual(
    { ...response, data: hex(response.data) },
    { type: MessageType.RESPONSE, id: 300, route: '', data: '7b 7d', compressed: false, error: true },
  );
  const push = decodeMessage(new Uint8Array([0x17, 0x00, 0x07, 0x78]), codes);
  assert.equal(push.type, MessageType.PUSH);
  assert.equal(push.route, 'onMessage');
  assert.equal(push.compressed, true);
  assert.equal(hex(push.data), '78');
  const plain = decodeMessage(new Uint8Array([0x06, 0x02, 0x6f, 0x6e]));
  assert.equal(plain.route, 'on');
  assert.equal(plain.data.length, 0);
});

test('malformed messages are protocol errors, never crashes', () => {
  const cases = [
    [],
    [0x08], // type 4
    [0x04], // response without an id
    [0x04, 0x80], // id continues past the end
    [0x00, 0x01], // spec §1.8: request flag + id and nothing else
    [0x06, 0x05, 0x61], // route shorter than its length
    [0x07, 0x00], // truncated route code
    [0x07, 0x00, 0x09], // unknown route code
    [0x06, 0x01, 0xff], // route not UTF-8
    [0x04, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], // id beyond 53 bits
  ];
  for (const bytes of cases) {
    assert.throws(() => decodeMessage(new Uint8Array(bytes), new Map()), ProtocolError, hex(bytes));
  }
});

test('every byte string either decodes or throws ProtocolError', () => {
  let seed = 42;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed;
  };
  const codes = new Map([[1, 'a.b']]);
  for (let i = 0; i < 2000; i++) {
    const bytes = Uint8Array.from({ length: random() % 12 }, () => random() & 0xff);
    for (const decode of [() => decodeMessage(bytes, codes), () => decodePackets(bytes)]) {
      try {
        decode();
      } catch (e) {
        assert.ok(e instanceof ProtocolError, `${hex(bytes)}: ${e}`);
      }
    }
  }
});

test('zlib round trip, magic detection and the inflate cap', async () => {
  const text = utf8('pitaya '.repeat(200));
  const packed = await deflate(text);
  assert.ok(packed.length < text.length);
  assert.equal(compressionOf(packed), 'deflate');
  assert.deepEqual(await inflate(packed), text);
  assert.equal(compressionOf(utf8('{"code":200}')), null);
  assert.equal(compressionOf(new Uint8Array([0x1f, 0x8b, 0x08])), 'gzip');
  assert.equal(compressionOf(new Uint8Array([0x78, 0x9c])), null, 'two bytes are too short');
  await assert.rejects(inflate(packed, 'deflate', 100), /exceeds 100 bytes/);
  await assert.rejects(inflate(new Uint8Array([0x78, 0x9c, 1, 2, 3])), ProtocolError);
});

test('protobuf error payloads decode', () => {
  // protos.Error{code: "PIT-499", msg: "fail", metadata: {"k": "v"}}
  const bytes = new Uint8Array([
    0x0a, 7, ...utf8('PIT-499'), 0x12, 4, ...utf8('fail'), 0x1a, 6, 0x0a, 1, 0x6b, 0x12, 1, 0x76,
  ]);
  assert.deepEqual(decodeProtoError(bytes), { code: 'PIT-499', msg: 'fail', metadata: { k: 'v' } });
  assert.throws(() => decodeProtoError(new Uint8Array([0x0a, 9, 0x41])), ProtocolError);
});
