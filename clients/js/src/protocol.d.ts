// Types of protocol.js: the Pitaya wire format without I/O.

export declare const PacketType: Readonly<{
  HANDSHAKE: 1;
  HANDSHAKE_ACK: 2;
  HEARTBEAT: 3;
  DATA: 4;
  KICK: 5;
}>;
export declare const MessageType: Readonly<{
  REQUEST: 0;
  NOTIFY: 1;
  RESPONSE: 2;
  PUSH: 3;
}>;
export declare const FLAG_ROUTE_COMPRESSED: 0x01;
export declare const FLAG_DATA_COMPRESSED: 0x10;
export declare const FLAG_ERROR: 0x20;
export declare const HEADER_LENGTH: 4;
export declare const MAX_BODY_LENGTH: number;
export declare const MAX_ROUTE_LENGTH: number;
export declare const MAX_INFLATED_LENGTH: number;

/** Malformed bytes from the peer, or a value that cannot be put on the wire. */
export declare class ProtocolError extends Error {
  constructor(message: string);
}

export interface Packet {
  type: number;
  body: Uint8Array;
}

export interface Message {
  type: number;
  /** Request id; 0 for notifies and pushes. */
  id: number;
  /** '' for responses. */
  route: string;
  /** Still deflated when `compressed` is set. */
  data: Uint8Array;
  compressed: boolean;
  error: boolean;
}

export interface MessageToEncode {
  type: number;
  id?: number;
  route?: string;
  data?: Uint8Array;
  compressed?: boolean;
  error?: boolean;
}

export declare function encodePacket(type: number, body?: Uint8Array): Uint8Array;
export declare function decodePackets(bytes: Uint8Array): Packet[];
export declare function encodeMessage(message: MessageToEncode, dict?: Map<string, number>): Uint8Array;
export declare function decodeMessage(bytes: Uint8Array, codes?: Map<number, string>): Message;
export declare function compressionOf(body: Uint8Array): 'deflate' | 'gzip' | null;
export declare function inflate(
  bytes: Uint8Array,
  format?: 'deflate' | 'gzip',
  limit?: number,
): Promise<Uint8Array>;
export declare function deflate(bytes: Uint8Array): Promise<Uint8Array>;
export declare function utf8(text: string): Uint8Array;
export declare function fromUtf8(bytes: Uint8Array): string;
