// Types of client.js: a Pitaya client over WebSocket.

export * from './protocol.js';

export declare const VERSION: string;

/**
 * A server's error answer (`{code, msg, metadata}`), or a local failure: `PIT-504`
 * (request timeout), `CLOSED`, `SESSION_LOST` (a resume got a fresh session: the request
 * was lost with the old one), `BUFFER_FULL` (too much queued while reconnecting), or the
 * handshake's refusal code as a string (`"400"`).
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
  /** Ask for session resume (docs/resume.md); default false: the handshake is unchanged. */
  resume?: boolean;
  /** Sent Data packets kept for replay after a resume (default 256). */
  resumeBuffer?: number;
  /** Bytes of sent Data packets kept for replay (default 1 MiB). */
  resumeBufferBytes?: number;
  /** First wait before reconnecting (default 50 ms); it doubles after each failure. */
  reconnectDelayMs?: number;
  /** Longest wait between reconnect attempts (default 2000 ms). */
  reconnectMaxDelayMs?: number;
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

/** The session resume state (`client.resumeInfo`, with the `resume` option). */
export interface ResumeInfo {
  /** The latest token; null when the server gave none (resume disabled, Go Pitaya). */
  token: string | null;
  /** Seconds the server waits for a dropped client. */
  ttl: number;
  /** The server's Data packets read on this session. */
  received: number;
  /** Data packets this client numbered on this session. */
  sent: number;
}

/** `dropped` event: the connection was lost; the client reconnects while the ttl lasts. */
export interface DroppedEvent {
  /** `closed by server` (end of stream, reset, close frame) or `heartbeat timeout`. */
  reason: string;
}

/** `resumed` event: the same session goes on. */
export interface ResumedEvent {
  /** How many of this client's Data packets the server had read (M). */
  received: number;
  /** Data packets sent after the handshake, before anything new: M+1 onward. */
  resent: number;
}

/** `freshSession` event: the server started a new session; log in again. */
export interface FreshSessionEvent {
  /** Requests in flight, failed with `SESSION_LOST`. */
  failed: number;
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
  /** A handshake is done and the connection is open (false while reconnecting). */
  readonly connected: boolean;
  /** The connection was lost and the client is resuming the session. */
  readonly reconnecting: boolean;
  /** Null without the `resume` option. */
  readonly resumeInfo: ResumeInfo | null;
  connect(url: string): Promise<HandshakeInfo>;
  request(route: string, body?: unknown, options?: RequestOptions): Promise<any>;
  notify(route: string, body?: unknown): Promise<void>;
  onPush(route: string, fn: (value: any, push: Push) => void): () => void;
  on(event: 'close', fn: (info: CloseInfo) => void): () => void;
  on(event: 'kick', fn: () => void): () => void;
  on(event: 'push', fn: (value: any, push: Push) => void): () => void;
  on(event: 'error', fn: (error: unknown) => void): () => void;
  on(event: 'dropped', fn: (event: DroppedEvent) => void): () => void;
  on(event: 'resumed', fn: (event: ResumedEvent) => void): () => void;
  on(event: 'freshSession', fn: (event: FreshSessionEvent) => void): () => void;
  /** Closes for good (no resume); pending requests fail with `CLOSED`. */
  close(): Promise<CloseInfo>;
  /** Same as `close()`. */
  disconnect(): Promise<CloseInfo>;
}

export declare function decodeProtoError(bytes: Uint8Array): {
  code: string;
  msg: string;
  metadata: Record<string, string>;
};
