// @ts-check
/**
 * @module pitaya-client/protocol
 *
 * The Pitaya wire format without any I/O: packets (type + 24-bit length), messages
 * (flag, varint id, plain or dictionary-compressed route, data) and zlib helpers.
 * Every decoder throws a {@link ProtocolError} on malformed input; a client that gets
 * one closes the connection, as the server does (spec §1.8).
 */

/** Packet types (spec §1.2). */
export const PacketType = Object.freeze({
  HANDSHAKE: 0x01,
  HANDSHAKE_ACK: 0x02,
  HEARTBEAT: 0x03,
  DATA: 0x04,
  KICK: 0x05,
});

/** Message types, bits 1–3 of the flag byte (spec §2.1). */
export const MessageType = Object.freeze({
  REQUEST: 0,
  NOTIFY: 1,
  RESPONSE: 2,
  PUSH: 3,
});

/** Flag bit: the route is a 2-byte dictionary code. */
export const FLAG_ROUTE_COMPRESSED = 0x01;
/** Flag bit: the data is zlib-compressed (Go calls it the "gzip" bit; it is RFC 1950). */
export const FLAG_DATA_COMPRESSED = 0x10;
/** Flag bit: the data is an error payload `{code, msg, metadata}`. */
export const FLAG_ERROR = 0x20;

/** Size of every packet header. */
export const HEADER_LENGTH = 4;
/** Largest body a 24-bit length can describe (spec §1.1: larger bodies are refused). */
export const MAX_BODY_LENGTH = 0xffffff;
/** Largest plain route: its length is one byte (spec §2.3). */
export const MAX_ROUTE_LENGTH = 255;
/** Cap on inflated data, so a small compressed body cannot claim unbounded memory. */
export const MAX_INFLATED_LENGTH = 16 * 1024 * 1024;

/** Malformed bytes from the peer, or a value that cannot be put on the wire. */
export class ProtocolError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/**
 * @typedef {object} Packet
 * @property {number} type one of {@link PacketType}
 * @property {Uint8Array} body
 */

/**
 * Frames one packet.
 * @param {number} type
 * @param {Uint8Array} [body]
 * @returns {Uint8Array}
 * @throws {ProtocolError} when the body is longer than {@link MAX_BODY_LENGTH}
 */
export function encodePacket(type, body = new Uint8Array(0)) {
  if (body.length > MAX_BODY_LENGTH) {
    throw new ProtocolError(`packet body of ${body.length} bytes exceeds ${MAX_BODY_LENGTH}`);
  }
  const out = new Uint8Array(HEADER_LENGTH + body.length);
  out[0] = type;
  out[1] = (body.length >>> 16) & 0xff;
  out[2] = (body.length >>> 8) & 0xff;
  out[3] = body.length & 0xff;
  out.set(body, HEADER_LENGTH);
  return out;
}

/**
 * Splits one WebSocket message into packets. The server sends one packet per message,
 * but several back to back are accepted too.
 * @param {Uint8Array} bytes
 * @returns {Packet[]}
 * @throws {ProtocolError} on an unknown type or a length that does not match the bytes
 */
export function decodePackets(bytes) {
  /** @type {Packet[]} */
  const packets = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (bytes.length - offset < HEADER_LENGTH) {
      throw new ProtocolError('truncated packet header');
    }
    const type = bytes[offset];
    if (type < PacketType.HANDSHAKE || type > PacketType.KICK) {
      throw new ProtocolError(`unknown packet type 0x${type.toString(16)}`);
    }
    const length = (bytes[offset + 1] << 16) | (bytes[offset + 2] << 8) | bytes[offset + 3];
    const start = offset + HEADER_LENGTH;
    if (start + length > bytes.length) {
      throw new ProtocolError(`packet body of ${length} bytes is truncated`);
    }
    packets.push({ type, body: bytes.subarray(start, start + length) });
    offset = start + length;
  }
  return packets;
}

/**
 * Appends `value` as an unsigned LEB128 varint (spec §2.2).
 * @param {number[]} out
 * @param {number} value a non-negative safe integer
 */
function writeVarint(out, value) {
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

/**
 * Reads a varint; JavaScript numbers hold 53 bits, so longer ones are refused.
 * @param {Uint8Array} bytes
 * @param {number} offset
 * @returns {[number, number]} value and the offset after it
 */
function readVarint(bytes, offset) {
  let value = 0;
  let scale = 1;
  for (let i = offset; i < bytes.length; i++) {
    const b = bytes[i];
    value += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) {
      return [value, i + 1];
    }
    scale *= 0x80;
    if (i - offset >= 7) {
      throw new ProtocolError('message id varint too long');
    }
  }
  throw new ProtocolError('truncated message id');
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/**
 * @typedef {object} Message
 * @property {number} type one of {@link MessageType}
 * @property {number} id request id (0 for notify and push)
 * @property {string} route '' for responses
 * @property {Uint8Array} data still compressed when `compressed` is set
 * @property {boolean} compressed the zlib flag was set
 * @property {boolean} error the error flag was set
 */

/**
 * Encodes a message body (the payload of a Data packet).
 * @param {object} message
 * @param {number} message.type one of {@link MessageType}
 * @param {number} [message.id] required for requests and responses, 1 to 2^53-1
 * @param {string} [message.route] required for requests, notifies and pushes
 * @param {Uint8Array} [message.data]
 * @param {boolean} [message.compressed] set the zlib flag (`data` must already be deflated)
 * @param {boolean} [message.error] set the error flag
 * @param {Map<string, number>} [dict] route → code; routes found here go out as codes
 * @returns {Uint8Array}
 * @throws {ProtocolError} on a bad id, an empty or too long route
 */
export function encodeMessage(message, dict) {
  const { type, id = 0, route = '', data = new Uint8Array(0) } = message;
  const hasId = type === MessageType.REQUEST || type === MessageType.RESPONSE;
  const hasRoute = type !== MessageType.RESPONSE;
  /** @type {number[]} */
  const head = [];
  let flag = (type & 0x07) << 1;
  if (message.compressed) flag |= FLAG_DATA_COMPRESSED;
  if (message.error) flag |= FLAG_ERROR;
  const code = hasRoute ? dict?.get(route) : undefined;
  if (code !== undefined) flag |= FLAG_ROUTE_COMPRESSED;
  head.push(flag);
  if (hasId) {
    if (!Number.isSafeInteger(id) || id < 1) {
      throw new ProtocolError(`invalid message id ${id}`);
    }
    writeVarint(head, id);
  }
  if (hasRoute) {
    if (code !== undefined) {
      head.push((code >>> 8) & 0xff, code & 0xff);
    } else {
      const bytes = textEncoder.encode(route);
      if (bytes.length === 0 || bytes.length > MAX_ROUTE_LENGTH) {
        throw new ProtocolError(`route must have 1 to ${MAX_ROUTE_LENGTH} bytes, got ${bytes.length}`);
      }
      head.push(bytes.length, ...bytes);
    }
  }
  const out = new Uint8Array(head.length + data.length);
  out.set(head, 0);
  out.set(data, head.length);
  return out;
}

/**
 * Decodes a message body. Compressed data is returned as is (see {@link inflate}).
 * @param {Uint8Array} bytes
 * @param {Map<number, string>} [codes] code → route, to resolve compressed routes
 * @returns {Message}
 * @throws {ProtocolError} on a bad type, truncation or an unknown route code
 */
export function decodeMessage(bytes, codes) {
  if (bytes.length < 1) throw new ProtocolError('empty message');
  const flag = bytes[0];
  const type = (flag >> 1) & 0x07;
  if (type > MessageType.PUSH) throw new ProtocolError(`wrong message type ${type}`);
  let offset = 1;
  let id = 0;
  if (type === MessageType.REQUEST || type === MessageType.RESPONSE) {
    [id, offset] = readVarint(bytes, offset);
  }
  let route = '';
  if (type !== MessageType.RESPONSE) {
    if (flag & FLAG_ROUTE_COMPRESSED) {
      if (bytes.length < offset + 2) throw new ProtocolError('truncated route code');
      const code = (bytes[offset] << 8) | bytes[offset + 1];
      const known = codes?.get(code);
      if (known === undefined) throw new ProtocolError(`unknown route code ${code}`);
      route = known;
      offset += 2;
    } else {
      if (bytes.length < offset + 1) throw new ProtocolError('truncated route');
      const length = bytes[offset];
      offset += 1;
      if (bytes.length < offset + length) throw new ProtocolError('truncated route');
      try {
        route = textDecoder.decode(bytes.subarray(offset, offset + length));
      } catch {
        throw new ProtocolError('route is not UTF-8');
      }
      offset += length;
    }
  }
  return {
    type,
    id,
    route,
    data: bytes.subarray(offset),
    compressed: (flag & FLAG_DATA_COMPRESSED) !== 0,
    error: (flag & FLAG_ERROR) !== 0,
  };
}

/**
 * Whether a handshake response body starts like zlib (`78 01|5E|9C|DA`) or gzip
 * (`1F 8B`): the server compresses it without a flag (spec §1.4).
 * @param {Uint8Array} body
 * @returns {'deflate' | 'gzip' | null} the DecompressionStream format, or null for plain
 */
export function compressionOf(body) {
  if (body.length <= 2) return null;
  if (body[0] === 0x78 && [0x01, 0x5e, 0x9c, 0xda].includes(body[1])) return 'deflate';
  if (body[0] === 0x1f && body[1] === 0x8b) return 'gzip';
  return null;
}

/**
 * Runs `bytes` through a (De)CompressionStream, stopping past `limit` output bytes.
 * @param {{writable: WritableStream<any>, readable: ReadableStream<Uint8Array>}} stream
 * @param {Uint8Array} bytes
 * @param {number} limit
 * @returns {Promise<Uint8Array>}
 */
async function transform(stream, bytes, limit) {
  const writer = stream.writable.getWriter();
  // Errors surface through the reader below; the writer's own promises would otherwise
  // be unhandled rejections.
  writer.write(bytes).catch(() => {});
  writer.close().catch(() => {});
  const reader = stream.readable.getReader();
  /** @type {Uint8Array[]} */
  const chunks = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      reader.cancel().catch(() => {});
      throw new ProtocolError(`inflated data exceeds ${limit} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/**
 * Inflates zlib (`'deflate'`, the data flag's format) or gzip data with the platform's
 * `DecompressionStream` (browsers, Node 18+), so the library has no dependency.
 * @param {Uint8Array} bytes
 * @param {'deflate' | 'gzip'} [format]
 * @param {number} [limit] refuse output longer than this
 * @returns {Promise<Uint8Array>}
 * @throws {ProtocolError} on corrupt input or output over the limit
 */
export async function inflate(bytes, format = 'deflate', limit = MAX_INFLATED_LENGTH) {
  try {
    return await transform(new DecompressionStream(format), bytes, limit);
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError(`cannot inflate ${format} data: ${/** @type {Error} */ (e).message}`);
  }
}

/**
 * Deflates `bytes` into zlib format (RFC 1950), the format the server accepts under the
 * data flag.
 * @param {Uint8Array} bytes
 * @returns {Promise<Uint8Array>}
 */
export async function deflate(bytes) {
  return transform(new CompressionStream('deflate'), bytes, Number.MAX_SAFE_INTEGER);
}

/**
 * UTF-8 bytes of a string.
 * @param {string} text
 * @returns {Uint8Array}
 */
export function utf8(text) {
  return textEncoder.encode(text);
}

/**
 * Text of UTF-8 bytes.
 * @param {Uint8Array} bytes
 * @returns {string}
 * @throws {ProtocolError} when the bytes are not valid UTF-8
 */
export function fromUtf8(bytes) {
  try {
    return textDecoder.decode(bytes);
  } catch {
    throw new ProtocolError('data is not UTF-8');
  }
}
