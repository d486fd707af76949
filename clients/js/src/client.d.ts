// Types of client.js: a Pitaya client over WebSocket.

export * from './protocol.js';

export declare const VERSION: string;

/**
 * A server's error answer (`{code, msg, metadata}`), or a local failure: `PIT-504`
 * (request timeout), `CLOSED`, or the handshake's refusal code as a string (`"400"`).
 */
export declare class PitayaError extends Error {
  constructor(code: string, msg: string, metadata?: Record<string, string>);
  code: string;
  msg: string;
  metadata: Record<string, string>;
}

/** What a WebSocket constructor must provide (browsers' and the `ws` package's do). */
export interface WebSocketLike {
  binaryType: string;
  readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void): void;
}

export interface ClientOptions {
  WebSocket?: new (url: string) => WebSocketLike;
  user?: Record<string, unknown>;
  platform?: string;
  clientVersion?: string;
  clientBuildNumber?: string;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  heartbeatTimeoutFactor?: number;
  compressRequests?: boolean;
}

export interface HandshakeInfo {
  /** Seconds; 0 when the server sends no heartbeat. */
  heartbeat: number;
  serializer: string;
  dict: Record<string, number>;
}

export interface CloseInfo {
  reason: string;
  kicked: boolean;
  code?: number;
}

export interface Push {
  route: string;
  data: Uint8Array;
}

export interface RequestOptions {
  raw?: boolean;
  timeoutMs?: number;
}

export declare class PitayaClient {
  constructor(options?: ClientOptions);
  static connect(url: string, options?: ClientOptions): Promise<PitayaClient>;
  readonly options: Required<Omit<ClientOptions, 'WebSocket' | 'user'>> & ClientOptions;
  /** Set once the handshake succeeded. */
  handshake: HandshakeInfo | null;
  /** Resolves once the connection is closed. */
  readonly closed: Promise<CloseInfo>;
  readonly connected: boolean;
  connect(url: string): Promise<HandshakeInfo>;
  request(route: string, body?: unknown, options?: RequestOptions): Promise<any>;
  notify(route: string, body?: unknown): Promise<void>;
  onPush(route: string, fn: (value: any, push: Push) => void): () => void;
  on(event: 'close', fn: (info: CloseInfo) => void): () => void;
  on(event: 'kick', fn: () => void): () => void;
  on(event: 'push', fn: (value: any, push: Push) => void): () => void;
  on(event: 'error', fn: (error: unknown) => void): () => void;
  close(): Promise<CloseInfo>;
}

export declare function decodeProtoError(bytes: Uint8Array): {
  code: string;
  msg: string;
  metadata: Record<string, string>;
};
