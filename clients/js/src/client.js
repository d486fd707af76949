// @ts-check
/**
 * @module pitaya-client
 *
 * A Pitaya client over WebSocket for browsers and Node 20+: handshake, heartbeats,
 * requests, notifies, pushes, route dictionary, zlib data, kick and (opt-in) session
 * resume. No dependencies: compressed data is inflated with the platform's
 * `DecompressionStream`.
 *
 * ```js
 * import { PitayaClient } from './client.js';
 * const client = await PitayaClient.connect('ws://127.0.0.1:3251/', { resume: true });
 * client.onPush('onMessage', (msg) => console.log(msg.from, msg.text));
 * client.on('freshSession', () => console.log('the server forgot us: log in again'));
 * const joined = await client.request('chat.join', { name: 'ana' });
 * await client.notify('chat.message', { text: 'hi' });
 * ```
 */

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
  fromUtf8,
  inflate,
  utf8,
} from './protocol.js';

export * from './protocol.js';

/** This library's version, sent as `sys.libVersion` and `sys.version`. */
export const VERSION = '0.1.0';

/** `readyState` of an open WebSocket (the same in browsers and the `ws` package). */
const WS_OPEN = 1;

/** Largest request id before the counter wraps back to 1 (libpitaya uses u32 ids). */
const MAX_REQUEST_ID = 0xffffffff;

/**
 * An error answer from the server (`{code, msg, metadata}`, spec §2.5), or a local
 * failure with a code of its own: `PIT-504` for a request that timed out (as Go's
 * client does), `CLOSED` when the connection closed first, `SESSION_LOST` when a resume
 * got a fresh session instead, `BUFFER_FULL` when too much was queued while
 * reconnecting, and the handshake's numeric code (as a string, e.g. `"400"`) when the
 * server refused the handshake.
 */
export class PitayaError extends Error {
  /**
   * @param {string} code e.g. `PIT-404`
   * @param {string} msg
   * @param {Record<string, string>} [metadata]
   */
  constructor(code, msg, metadata = {}) {
    super(`${code}: ${msg}`);
    this.name = 'PitayaError';
    /** @type {string} */
    this.code = code;
    /** @type {string} */
    this.msg = msg;
    /** @type {Record<string, string>} */
    this.metadata = metadata;
  }
}

/**
 * @typedef {object} ClientOptions
 * @property {typeof WebSocket} [WebSocket] constructor to use; defaults to the global
 *   one (browsers, Node 22+). On Node 20 pass the `ws` package's `WebSocket`.
 * @property {Record<string, unknown>} [user] handshake `user` data
 * @property {string} [platform] `sys.platform` (default `"js"`)
 * @property {string} [clientVersion] `sys.clientVersion`
 * @property {string} [clientBuildNumber] `sys.clientBuildNumber`
 * @property {number} [connectTimeoutMs] socket open plus handshake (default 10000); also
 *   bounds each reconnect attempt
 * @property {number} [requestTimeoutMs] per request; 0 waits forever (default 10000)
 * @property {number} [heartbeatTimeoutFactor] the server counts as gone after this many
 *   heartbeat intervals without any packet from it (default 2; the server itself sends
 *   a heartbeat every interval)
 * @property {boolean} [compressRequests] zlib-deflate outgoing data when that makes it
 *   shorter (the server honours the data flag); default false
 * @property {boolean} [resume] ask for session resume (docs/resume.md): after a dropped
 *   connection, reconnect and continue the same session with nothing lost; default false
 * @property {number} [resumeBuffer] sent Data packets kept for replay (default 256)
 * @property {number} [resumeBufferBytes] bytes of sent Data packets kept (default 1 MiB)
 * @property {number} [reconnectDelayMs] first wait before reconnecting (default 50)
 * @property {number} [reconnectMaxDelayMs] the wait doubles up to this (default 2000)
 */

/**
 * @typedef {object} HandshakeInfo
 * @property {number} heartbeat interval in seconds, 0 when the server sends none
 * @property {string} serializer `"json"` or `"protobuf"`
 * @property {Record<string, number>} dict route dictionary offered by the server
 */

/**
 * @typedef {object} CloseInfo
 * @property {string} reason `closed by client`, `kicked`, `heartbeat timeout`,
 *   `closed by server`, `connect timeout`, `resume failed: ...` or `protocol error: ...`
 * @property {boolean} kicked the server sent a kick packet first
 * @property {number} [code] the WebSocket close code, when there was a close frame
 */

/**
 * @typedef {object} ResumeInfo
 * @property {string | null} token the server's latest resume token; null when the server
 *   gave none (it has resume disabled, or is Go Pitaya)
 * @property {number} ttl seconds the server waits for a dropped client
 * @property {number} received the server's Data packets read on this session
 * @property {number} sent Data packets this client numbered on this session
 */

/**
 * @typedef {object} Push
 * @property {string} route
 * @property {Uint8Array} data the body after inflation, before decoding
 */

/**
 * @typedef {object} RequestOptions
 * @property {boolean} [raw] resolve with the body's bytes instead of decoded JSON
 * @property {number} [timeoutMs] overrides `requestTimeoutMs` for this request
 */

/**
 * @typedef {object} Pending
 * @property {(value: unknown) => void} resolve
 * @property {(error: Error) => void} reject
 * @property {string} route
 * @property {boolean} raw
 * @property {ReturnType<typeof setTimeout> | undefined} timer
 */

/**
 * A Data packet this client sent (or queued), kept to be sent again after a resume.
 * @typedef {object} Kept
 * @property {number} seq its number on the session, from 1
 * @property {Uint8Array} bytes the whole packet, header included, as first sent
 */

/**
 * One session with a Pitaya frontend's WebSocket acceptor: one connection, or with the
 * `resume` option, a chain of connections that continue the same server session.
 *
 * Events (`on(name, fn)`): `close` ({@link CloseInfo}, once), `kick` (before `close`),
 * `push` (every push: `fn(value, push)`), `error` (a push that could not be decoded, a
 * listener that threw). With `resume`: `dropped` (`{reason}`: the connection was lost
 * and the client reconnects), `resumed` (`{received, resent}`: the same session goes
 * on), `freshSession` (`{failed}`: the server started a new session; requests in flight
 * failed with `SESSION_LOST`). Pushes by route: {@link PitayaClient#onPush}.
 *
 * Message bodies follow the handshake's serializer. With `json`, an object (or any JSON
 * value) is stringified, a `Uint8Array` is sent as is, and replies and pushes are parsed
 * (an empty body gives `null`). With `protobuf`, bodies are `Uint8Array`s both ways.
 */
export class PitayaClient {
  /** @param {ClientOptions} [options] */
  constructor(options = {}) {
    this.options = {
      platform: 'js',
      clientVersion: '',
      clientBuildNumber: '',
      connectTimeoutMs: 10000,
      requestTimeoutMs: 10000,
      heartbeatTimeoutFactor: 2,
      compressRequests: false,
      resume: false,
      resumeBuffer: 256,
      resumeBufferBytes: 1024 * 1024,
      reconnectDelayMs: 50,
      reconnectMaxDelayMs: 2000,
      ...options,
    };
    /** @type {HandshakeInfo | null} set once the first handshake succeeded */
    this.handshake = null;
    /** @type {WebSocket | null} the current connection's socket */
    this.ws = null;
    /** @type {string} */
    this.url = '';
    /**
     * `idle`, `connecting` (first connection), `open`, `reconnecting` (resume after a
     * drop) or `closed`.
     */
    this.state = 'idle';
    /** The current socket's handshake is done. */
    this.linkReady = false;
    /** @type {Map<number, Pending>} */
    this.pending = new Map();
    /** @type {Map<string, Set<Function>>} */
    this.listeners = new Map();
    /** @type {Map<string, Set<Function>>} */
    this.pushListeners = new Map();
    /** @type {Map<string, number>} */
    this.routeToCode = new Map();
    /** @type {Map<number, string>} */
    this.codeToRoute = new Map();
    this.lastId = 0;
    /** @type {CloseInfo | null} */
    this.closeInfo = null;
    /** Incoming packets are handled one after the other: inflating is asynchronous. */
    this.inbox = Promise.resolve();
    /** Outgoing messages keep their order although deflating is asynchronous. */
    this.outbox = Promise.resolve();
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.heartbeatTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.watchdog = undefined;
    /** @type {((info: HandshakeInfo) => void) | null} */
    this.onHandshake = null;
    /** @type {Error | null} what `connect` rejects with, when more precise than CLOSED */
    this.connectError = null;

    // Session resume (docs/resume.md); counters and copies only with the option.
    /** @type {string | null} */
    this.resumeToken = null;
    this.resumeTtl = 0;
    /** The server's Data packets read on this session, counted as they come off the wire. */
    this.received = 0;
    /** Data packets numbered on this session (the last one's number). */
    this.sent = 0;
    /** Highest number handed to a socket; later ones wait for the replay. */
    this.flushed = 0;
    /** Bumped by a fresh session: what was queued before it is not sent on it. */
    this.epoch = 0;
    /** @type {Kept[]} oldest first */
    this.kept = [];
    this.keptBytes = 0;
    /** @type {{reason: string, deadline: number, delay: number, attempts: number} | null} */
    this.reconnect = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} the next reconnect attempt */
    this.retryTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} bounds one reconnect attempt */
    this.attemptTimer = undefined;

    /** @type {(info: CloseInfo) => void} */
    let resolveClosed = () => {};
    /** Resolves with the {@link CloseInfo} once the client is closed for good. */
    this.closed = new Promise((resolve) => {
      resolveClosed = resolve;
    });
    this.resolveClosed = resolveClosed;
  }

  /**
   * Creates a client and connects it.
   * @param {string} url e.g. `ws://127.0.0.1:3251/` (any path is accepted by Pitaya)
   * @param {ClientOptions} [options]
   * @returns {Promise<PitayaClient>}
   */
  static async connect(url, options) {
    const client = new PitayaClient(options);
    await client.connect(url);
    return client;
  }

  /** Whether a handshake is done and the connection is open (false while reconnecting). */
  get connected() {
    return this.state === 'open';
  }

  /** Whether the client lost its connection and is resuming the session. */
  get reconnecting() {
    return this.state === 'reconnecting';
  }

  /**
   * The resume state, or null without the `resume` option.
   * @returns {ResumeInfo | null}
   */
  get resumeInfo() {
    if (!this.options.resume) return null;
    return { token: this.resumeToken, ttl: this.resumeTtl, received: this.received, sent: this.sent };
  }

  /**
   * Opens the socket and performs the handshake (sends `sys` and `user`, waits for code
   * 200, sends the ack, starts heartbeats). A client connects once; with `resume` it
   * reconnects by itself after a drop.
   * @param {string} url
   * @returns {Promise<HandshakeInfo>}
   * @throws {PitayaError} code `"400"` (or another non-200 code) when the server refuses
   *   the handshake, `CLOSED` when the socket closes or times out first
   */
  connect(url) {
    if (this.state !== 'idle') {
      return Promise.reject(new Error('a PitayaClient connects only once'));
    }
    const WS = this.options.WebSocket ?? globalThis.WebSocket;
    if (typeof WS !== 'function') {
      return Promise.reject(
        new Error('no WebSocket constructor: pass options.WebSocket (e.g. from the "ws" package)'),
      );
    }
    this.url = url;
    this.state = 'connecting';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.shutdown('connect timeout'),
        this.options.connectTimeoutMs,
      );
      this.onHandshake = (info) => {
        clearTimeout(timer);
        resolve(info);
      };
      this.closed.then((info) => {
        clearTimeout(timer);
        if (this.handshake === null) {
          reject(
            this.connectError ??
              new PitayaError('CLOSED', `connection ${info.reason} before the handshake completed`),
          );
        }
      });
      this.openSocket();
    });
  }

  /**
   * Sends a request and waits for its response. With `resume`, a request made while
   * reconnecting waits and is sent once the session is resumed.
   * @param {string} route `service.method` or `serverType.service.method`
   * @param {unknown} [body] see the class comment
   * @param {RequestOptions} [options]
   * @returns {Promise<any>} the decoded reply (bytes with `raw` or protobuf)
   * @throws {PitayaError} the server's error, `PIT-504` on timeout, `CLOSED`,
   *   `SESSION_LOST` (a fresh session replaced the one it was sent on), `BUFFER_FULL`
   */
  request(route, body, options = {}) {
    if (!this.usable) return Promise.reject(this.notConnected());
    const id = this.nextId();
    let data;
    try {
      data = this.encodeBody(body);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? this.options.requestTimeoutMs;
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              this.pending.delete(id);
              reject(new PitayaError('PIT-504', `request ${route} timed out after ${timeoutMs} ms`));
            }, timeoutMs)
          : undefined;
      this.pending.set(id, { resolve, reject, route, raw: options.raw === true, timer });
      this.send({ type: MessageType.REQUEST, id, route }, data).catch((e) => {
        const pending = this.pending.get(id);
        if (pending) {
          this.pending.delete(id);
          clearTimeout(pending.timer);
          pending.reject(e);
        }
      });
    });
  }

  /**
   * Sends a notify: no reply comes back, not even an error.
   * @param {string} route
   * @param {unknown} [body]
   * @returns {Promise<void>} resolves once the message is handed to the socket (or, while
   *   reconnecting with `resume`, queued to be sent after the resume)
   * @throws {PitayaError} `CLOSED` when not connected, `BUFFER_FULL`
   */
  async notify(route, body) {
    if (!this.usable) throw this.notConnected();
    await this.send({ type: MessageType.NOTIFY, route }, this.encodeBody(body));
  }

  /**
   * Listens to pushes on one route.
   * @param {string} route e.g. `onMessage`
   * @param {(value: any, push: Push) => void} fn value decoded as replies are
   * @returns {() => void} removes the listener
   */
  onPush(route, fn) {
    return addListener(this.pushListeners, route, fn);
  }

  /**
   * Listens to a client event: `close`, `kick`, `push`, `error`, and with `resume`,
   * `dropped`, `resumed` and `freshSession`.
   * @param {'close' | 'kick' | 'push' | 'error' | 'dropped' | 'resumed' | 'freshSession'} event
   * @param {Function} fn
   * @returns {() => void} removes the listener
   */
  on(event, fn) {
    return addListener(this.listeners, event, fn);
  }

  /**
   * Closes the connection for good (no resume); pending requests fail with `CLOSED`.
   * @returns {Promise<CloseInfo>}
   */
  close() {
    this.shutdown('closed by client');
    return this.closed;
  }

  /** Same as {@link PitayaClient#close}. */
  disconnect() {
    return this.close();
  }

  // Internals below; not part of the API.

  /**
   * Requests and notifies are accepted: connected, or reconnecting to resume.
   * @private
   */
  get usable() {
    return this.state === 'open' || this.state === 'reconnecting';
  }

  /**
   * Numbering and copies are on: the option is set and the server gave a token.
   * @private
   */
  get tracking() {
    return this.options.resume === true && this.resumeToken !== null;
  }

  /** @private */
  notConnected() {
    const why = this.closeInfo ? `connection ${this.closeInfo.reason}` : 'not connected';
    return new PitayaError('CLOSED', why);
  }

  /** @private */
  nextId() {
    this.lastId = this.lastId >= MAX_REQUEST_ID ? 1 : this.lastId + 1;
    return this.lastId;
  }

  /**
   * @private
   * @param {unknown} body
   * @returns {Uint8Array}
   */
  encodeBody(body) {
    if (body instanceof Uint8Array) return body;
    if (body === undefined) return new Uint8Array(0);
    if (this.handshake?.serializer === 'protobuf') {
      throw new TypeError('with the protobuf serializer, bodies are Uint8Arrays');
    }
    return utf8(JSON.stringify(body));
  }

  /**
   * @private
   * @param {Uint8Array} data
   * @param {boolean} raw
   * @returns {unknown}
   */
  decodeBody(data, raw) {
    if (raw || this.handshake?.serializer === 'protobuf') return data;
    if (data.length === 0) return null;
    const text = fromUtf8(data);
    try {
      return JSON.parse(text);
    } catch {
      throw new ProtocolError(`body is not JSON: ${text.slice(0, 80)}`);
    }
  }

  /**
   * Queues one message; order is kept even when some are deflated first.
   * @private
   * @param {{type: number, id?: number, route?: string}} head
   * @param {Uint8Array} data
   * @returns {Promise<void>}
   */
  send(head, data) {
    const epoch = this.epoch;
    const next = this.outbox.then(async () => {
      let body = data;
      let compressed = false;
      if (this.options.compressRequests && data.length > 0) {
        const deflated = await deflate(data);
        if (deflated.length < data.length) {
          body = deflated;
          compressed = true;
        }
      }
      if (!this.usable) throw this.notConnected();
      if (epoch !== this.epoch) throw sessionLost(head.route ?? '');
      const message = encodeMessage({ ...head, data: body, compressed }, this.routeToCode);
      this.sendData(encodePacket(PacketType.DATA, message));
    });
    this.outbox = next.catch(() => {});
    return next;
  }

  /**
   * Sends one Data packet, or with resume numbers it, keeps a copy and, while
   * reconnecting, leaves it for after the replay.
   * @private
   * @param {Uint8Array} packet
   * @throws {PitayaError} `BUFFER_FULL` when it would not fit beside the packets that
   *   still wait for a connection
   */
  sendData(packet) {
    if (!this.tracking) {
      if (this.state !== 'open') throw this.notConnected();
      this.write(packet);
      return;
    }
    const seq = this.sent + 1;
    if (this.state === 'open') {
      this.write(packet);
      this.flushed = seq;
    }
    this.kept.push({ seq, bytes: packet });
    this.keptBytes += packet.length;
    this.sent = seq;
    const { resumeBuffer, resumeBufferBytes } = this.options;
    // Only copies already handed to a socket may go: a queued one is its only copy.
    while (
      (this.kept.length > resumeBuffer || this.keptBytes > resumeBufferBytes) &&
      this.kept[0].seq <= this.flushed
    ) {
      this.keptBytes -= /** @type {Kept} */ (this.kept.shift()).bytes.length;
    }
    if (this.kept.length > resumeBuffer || this.keptBytes > resumeBufferBytes) {
      // Take it back: it is the newest, so it is last.
      this.kept.pop();
      this.keptBytes -= packet.length;
      this.sent = seq - 1;
      throw new PitayaError(
        'BUFFER_FULL',
        `reconnecting, and ${this.kept.length} packets (${this.keptBytes} bytes) already wait`,
      );
    }
  }

  /**
   * @private
   * @param {number} type
   * @param {Uint8Array} [body]
   */
  sendPacket(type, body) {
    this.write(encodePacket(type, body));
  }

  /**
   * Hands bytes to the current socket when it is open; otherwise they are lost, and
   * with resume the server's count says to send them again.
   * @private
   * @param {Uint8Array} bytes
   */
  write(bytes) {
    if (this.ws && this.ws.readyState === WS_OPEN) this.ws.send(bytes);
  }

  /**
   * Opens a socket to `this.url` and makes it the current one; events of a socket that
   * is no longer current are ignored.
   * @private
   */
  openSocket() {
    const WS = this.options.WebSocket ?? globalThis.WebSocket;
    this.linkReady = false;
    let ws;
    try {
      ws = new WS(this.url);
    } catch (e) {
      this.ws = null;
      if (this.state === 'reconnecting') {
        this.scheduleAttempt();
      } else {
        this.connectError = /** @type {Error} */ (e);
        this.shutdown('connect failed');
      }
      return;
    }
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.addEventListener('open', () => {
      if (ws === this.ws && !this.closeInfo) this.sendHandshake();
    });
    ws.addEventListener('message', (event) => {
      if (ws === this.ws) this.onSocketMessage(ws, event.data);
    });
    // Queued behind the packets that came before the close (a last response, a kick,
    // a handshake refusal), so they are handled first.
    ws.addEventListener('close', (event) => {
      if (ws !== this.ws) return;
      this.inbox = this.inbox.then(() => this.linkLost(ws, 'closed by server', event.code));
    });
    // An error event is always followed by a close event, which does the cleanup.
    ws.addEventListener('error', () => {});
  }

  /**
   * The socket `ws` is gone or given up on: resume when the session can be resumed,
   * try again while resuming, or close for good.
   * @private
   * @param {WebSocket | null} ws
   * @param {string} reason
   * @param {number} [code]
   */
  linkLost(ws, reason, code) {
    if (this.closeInfo || ws !== this.ws) return;
    if (this.state === 'open' && this.tracking && this.resumeTtl > 0) {
      this.detach();
      this.state = 'reconnecting';
      this.reconnect = {
        reason,
        deadline: Date.now() + this.resumeTtl * 1000,
        delay: this.options.reconnectDelayMs,
        attempts: 0,
      };
      this.emit('dropped', { reason });
      this.scheduleAttempt();
    } else if (this.state === 'reconnecting') {
      this.detach();
      this.scheduleAttempt();
    } else {
      this.shutdown(reason, code);
    }
  }

  /**
   * Forgets the current socket (closing it if still open) and its timers.
   * @private
   */
  detach() {
    const ws = this.ws;
    this.ws = null;
    this.linkReady = false;
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.watchdog);
    clearTimeout(this.attemptTimer);
    if (ws && ws.readyState <= WS_OPEN) {
      try {
        ws.close();
      } catch {
        // Already closing: nothing more to do.
      }
    }
  }

  /**
   * Waits the backoff delay, then opens the next socket; gives up once the next try
   * would start after the ttl.
   * @private
   */
  scheduleAttempt() {
    const r = this.reconnect;
    if (!r || this.closeInfo) return;
    const delay = r.delay;
    if (Date.now() + delay >= r.deadline) {
      this.shutdown(`resume failed: ${r.reason}, no connection within the ${this.resumeTtl} s ttl`);
      return;
    }
    r.delay = Math.min(r.delay * 2, this.options.reconnectMaxDelayMs);
    this.retryTimer = setTimeout(() => {
      if (this.closeInfo) return;
      r.attempts += 1;
      this.openSocket();
      const ws = this.ws;
      if (!ws) return;
      const limit = Math.max(1, Math.min(this.options.connectTimeoutMs, r.deadline - Date.now()));
      this.attemptTimer = setTimeout(() => this.linkLost(ws, 'connect timeout'), limit);
    }, delay);
  }

  /** @private */
  sendHandshake() {
    const { platform, clientVersion, clientBuildNumber, user } = this.options;
    /** @type {Record<string, unknown>} */
    const sys = {
      // `type` and `version` are what pomelo JS clients send; Pitaya reads the other
      // four (all strings, spec §1.3).
      type: 'js-websocket',
      version: VERSION,
      platform,
      libVersion: VERSION,
      clientBuildNumber,
      clientVersion,
    };
    if (this.options.resume) {
      sys.resume =
        this.state === 'reconnecting'
          ? { token: this.resumeToken, received: this.received }
          : true;
    }
    const request = { sys, ...(user ? { user } : {}) };
    this.sendPacket(PacketType.HANDSHAKE, utf8(JSON.stringify(request)));
  }

  /**
   * @private
   * @param {WebSocket} ws the socket it came from
   * @param {unknown} data
   */
  onSocketMessage(ws, data) {
    if (this.closeInfo) return;
    if (!(data instanceof ArrayBuffer)) {
      this.shutdown('protocol error: text frame');
      return;
    }
    let packets;
    try {
      packets = decodePackets(new Uint8Array(data));
    } catch (e) {
      this.shutdown(`protocol error: ${/** @type {Error} */ (e).message}`);
      return;
    }
    // Any packet proves the server alive, before its (possibly slow) handling.
    this.armWatchdog();
    for (const packet of packets) {
      // Counted as read off the wire, not as handled, so that a resume right after a
      // drop asks for exactly what never arrived (docs/resume.md, Counting).
      if (packet.type === PacketType.DATA) this.received += 1;
      this.inbox = this.inbox
        .then(() => (this.closeInfo ? undefined : this.handlePacket(ws, packet)))
        .catch((e) => this.shutdown(`protocol error: ${e.message}`));
    }
  }

  /**
   * @private
   * @param {WebSocket} ws the socket it came from
   * @param {import('./protocol.js').Packet} packet
   */
  async handlePacket(ws, packet) {
    switch (packet.type) {
      case PacketType.HANDSHAKE:
        return this.handleHandshake(ws, packet.body);
      case PacketType.HEARTBEAT:
        return undefined;
      case PacketType.DATA:
        if (this.handshake === null) throw new ProtocolError('data before the handshake');
        return this.handleData(packet.body);
      case PacketType.KICK:
        this.emit('kick');
        this.shutdown('kicked', undefined, true);
        return undefined;
      default:
        throw new ProtocolError(`unexpected packet type ${packet.type}`);
    }
  }

  /**
   * @private
   * @param {WebSocket} ws the socket it came from
   * @param {Uint8Array} body
   */
  async handleHandshake(ws, body) {
    // An attempt given up on (timed out) while its answer waited in the inbox.
    if (ws !== this.ws) return;
    if (this.linkReady) throw new ProtocolError('second handshake response');
    const format = compressionOf(body);
    const plain = format ? await inflate(body, format) : body;
    if (ws !== this.ws || this.closeInfo) return;
    let response;
    try {
      response = JSON.parse(fromUtf8(plain));
    } catch {
      throw new ProtocolError('handshake response is not JSON');
    }
    if (response?.code !== 200 || typeof response.sys !== 'object' || response.sys === null) {
      const code = String(response?.code ?? 'unknown');
      this.connectError = new PitayaError(code, `handshake rejected with code ${code}`);
      this.shutdown(`handshake rejected with code ${code}`);
      return;
    }
    const sys = response.sys;
    /** @type {Record<string, number>} */
    const dict = sys.dict && typeof sys.dict === 'object' ? sys.dict : {};
    this.routeToCode.clear();
    this.codeToRoute.clear();
    for (const [route, code] of Object.entries(dict)) {
      if (Number.isInteger(code) && code >= 0 && code <= 0xffff) {
        this.routeToCode.set(route, code);
        this.codeToRoute.set(code, route);
      }
    }
    const heartbeat = typeof sys.heartbeat === 'number' && sys.heartbeat > 0 ? sys.heartbeat : 0;
    const serializer = typeof sys.serializer === 'string' ? sys.serializer : 'json';
    const grant = this.options.resume ? readResumeGrant(sys.resume) : null;
    const resuming = this.state === 'reconnecting';
    const resumedAt = resuming && grant?.resumed === true ? grant.received : undefined;
    if (resuming && grant?.resumed === true && resumedAt === undefined) {
      throw new ProtocolError('a resumed session without a count of the packets read');
    }
    if (resumedAt !== undefined && resumedAt > this.sent) {
      throw new ProtocolError(`the server read ${resumedAt} packets of ${this.sent} sent`);
    }
    /** The packets to send again, or null when the server holds all it needs. */
    let resend = null;
    if (resumedAt !== undefined && resumedAt < this.sent) {
      const from = this.kept.findIndex((k) => k.seq === resumedAt + 1);
      if (from < 0) {
        this.shutdown(`resume failed: packet ${resumedAt + 1} is no longer kept`);
        return;
      }
      resend = this.kept.slice(from);
    }

    clearTimeout(this.attemptTimer);
    this.handshake = { heartbeat, serializer, dict };
    this.linkReady = true;
    this.state = 'open';
    this.resumeToken = grant?.token ?? null;
    this.resumeTtl = grant?.ttl ?? 0;
    this.sendPacket(PacketType.HANDSHAKE_ACK);
    if (resumedAt !== undefined) {
      // Before anything new (docs/resume.md, Resume): the packets the server never read.
      for (const k of resend ?? []) this.write(k.bytes);
      this.flushed = this.sent;
      this.dropKeptThrough(resumedAt);
    } else if (resuming) {
      this.startFresh();
    }
    if (heartbeat > 0) {
      this.heartbeatTimer = setInterval(
        () => this.sendPacket(PacketType.HEARTBEAT),
        heartbeat * 1000,
      );
      this.armWatchdog();
    }
    this.reconnect = null;
    if (resumedAt !== undefined) {
      this.emit('resumed', { received: resumedAt, resent: resend?.length ?? 0 });
    } else if (!resuming) {
      this.onHandshake?.(this.handshake);
    }
  }

  /**
   * A resume got a new session: what was in flight is lost with the old one.
   * @private
   */
  startFresh() {
    const failed = this.pending.size;
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(sessionLost(pending.route));
    }
    this.pending.clear();
    // Messages still in the outbox belong to the old session too.
    this.epoch += 1;
    this.sent = 0;
    this.flushed = 0;
    this.received = 0;
    this.kept = [];
    this.keptBytes = 0;
    this.emit('freshSession', { failed });
  }

  /**
   * Forgets the copies of packets the server has read.
   * @private
   * @param {number} seq
   */
  dropKeptThrough(seq) {
    while (this.kept.length > 0 && this.kept[0].seq <= seq) {
      this.keptBytes -= /** @type {Kept} */ (this.kept.shift()).bytes.length;
    }
  }

  /**
   * @private
   * @param {Uint8Array} body
   */
  async handleData(body) {
    const message = decodeMessage(body, this.codeToRoute);
    const data = message.compressed ? await inflate(message.data) : message.data;
    if (message.type === MessageType.RESPONSE) {
      const pending = this.pending.get(message.id);
      // A late answer to a request that already timed out is dropped.
      if (!pending) return;
      this.pending.delete(message.id);
      clearTimeout(pending.timer);
      if (message.error) {
        pending.reject(this.decodeError(data));
        return;
      }
      try {
        pending.resolve(this.decodeBody(data, pending.raw));
      } catch (e) {
        pending.reject(/** @type {Error} */ (e));
      }
    } else if (message.type === MessageType.PUSH) {
      let value;
      try {
        value = this.decodeBody(data, false);
      } catch (e) {
        this.emit('error', e);
        return;
      }
      const push = { route: message.route, data };
      for (const fn of this.pushListeners.get(message.route) ?? []) call(fn, this, value, push);
      this.emit('push', value, push);
    } else {
      throw new ProtocolError(`the server sent a message of type ${message.type}`);
    }
  }

  /**
   * An error payload in the handshake's serializer (spec §2.5).
   * @private
   * @param {Uint8Array} data
   * @returns {PitayaError}
   */
  decodeError(data) {
    try {
      const e =
        this.handshake?.serializer === 'protobuf' ? decodeProtoError(data) : JSON.parse(fromUtf8(data));
      return new PitayaError(String(e.code || 'PIT-000'), String(e.msg ?? ''), e.metadata ?? {});
    } catch {
      return new PitayaError('PIT-000', 'undecodable error response');
    }
  }

  /** @private */
  armWatchdog() {
    const heartbeat = this.handshake?.heartbeat ?? 0;
    if (heartbeat <= 0 || this.closeInfo || !this.linkReady) return;
    clearTimeout(this.watchdog);
    const ws = this.ws;
    this.watchdog = setTimeout(
      () => this.linkLost(ws, 'heartbeat timeout'),
      heartbeat * 1000 * this.options.heartbeatTimeoutFactor,
    );
  }

  /**
   * Ends the client once, whatever the cause, and fails what is still pending.
   * @private
   * @param {string} reason
   * @param {number} [code]
   * @param {boolean} [kicked]
   */
  shutdown(reason, code, kicked = false) {
    if (this.closeInfo) return;
    /** @type {CloseInfo} */
    const info = { reason, kicked };
    if (code !== undefined) info.code = code;
    this.closeInfo = info;
    this.state = 'closed';
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.watchdog);
    clearTimeout(this.retryTimer);
    clearTimeout(this.attemptTimer);
    this.reconnect = null;
    this.kept = [];
    this.keptBytes = 0;
    const ws = this.ws;
    if (ws && ws.readyState <= WS_OPEN) {
      try {
        ws.close(1000, reason.slice(0, 120));
      } catch {
        // Already closing: nothing more to do.
      }
    }
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new PitayaError('CLOSED', `connection ${reason}`));
    }
    this.pending.clear();
    this.emit('close', info);
    this.resolveClosed(info);
  }

  /**
   * @private
   * @param {string} event
   * @param {...unknown} args
   */
  emit(event, ...args) {
    for (const fn of this.listeners.get(event) ?? []) call(fn, this, ...args);
  }
}

/**
 * Reads the handshake response's `sys.resume`: anything but an object with a string
 * `token` means the server gave no resume (docs/resume.md, Handshake).
 * @param {unknown} value
 * @returns {{token: string, ttl: number, resumed?: boolean, received?: number} | null}
 */
function readResumeGrant(value) {
  if (typeof value !== 'object' || value === null) return null;
  const v = /** @type {Record<string, unknown>} */ (value);
  if (typeof v.token !== 'string') return null;
  const ttl = typeof v.ttl === 'number' && v.ttl > 0 ? v.ttl : 0;
  /** @type {{token: string, ttl: number, resumed?: boolean, received?: number}} */
  const grant = { token: v.token, ttl };
  if (typeof v.resumed === 'boolean') grant.resumed = v.resumed;
  if (Number.isSafeInteger(v.received) && /** @type {number} */ (v.received) >= 0) {
    grant.received = /** @type {number} */ (v.received);
  }
  return grant;
}

/**
 * @param {string} route
 * @returns {PitayaError}
 */
function sessionLost(route) {
  return new PitayaError(
    'SESSION_LOST',
    `${route} was lost: the server started a fresh session instead of resuming`,
  );
}

/**
 * @param {Map<string, Set<Function>>} map
 * @param {string} key
 * @param {Function} fn
 * @returns {() => void}
 */
function addListener(map, key, fn) {
  let set = map.get(key);
  if (!set) {
    set = new Set();
    map.set(key, set);
  }
  set.add(fn);
  return () => {
    set.delete(fn);
  };
}

/**
 * Calls a listener; one that throws does not break the client, it is reported.
 * @param {Function} fn
 * @param {PitayaClient} client
 * @param {...unknown} args
 */
function call(fn, client, ...args) {
  try {
    fn(...args);
  } catch (e) {
    const onError = client.listeners.get('error');
    if (onError && onError.size > 0 && !onError.has(fn)) {
      for (const handler of onError) {
        try {
          handler(e);
        } catch {
          // An error handler that throws has nobody left to tell.
        }
      }
    } else {
      console.error('pitaya client: a listener threw', e);
    }
  }
}

/**
 * Decodes `protos.Error` (code = 1, msg = 2, map<string,string> metadata = 3), the
 * error payload under the protobuf serializer.
 * @param {Uint8Array} bytes
 * @returns {{code: string, msg: string, metadata: Record<string, string>}}
 * @throws {ProtocolError} on malformed protobuf
 */
export function decodeProtoError(bytes) {
  const out = { code: '', msg: '', metadata: /** @type {Record<string, string>} */ ({}) };
  for (const [field, value] of protoFields(bytes)) {
    if (field === 1) out.code = fromUtf8(value);
    else if (field === 2) out.msg = fromUtf8(value);
    else if (field === 3) {
      let key = '';
      let val = '';
      for (const [f, v] of protoFields(value)) {
        if (f === 1) key = fromUtf8(v);
        else if (f === 2) val = fromUtf8(v);
      }
      out.metadata[key] = val;
    }
  }
  return out;
}

/**
 * Length-delimited fields of a protobuf message; other wire types are skipped.
 * @param {Uint8Array} bytes
 * @returns {Array<[number, Uint8Array]>}
 */
function protoFields(bytes) {
  /** @type {Array<[number, Uint8Array]>} */
  const fields = [];
  let offset = 0;
  const varint = () => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (offset >= bytes.length) throw new ProtocolError('truncated protobuf');
      const b = bytes[offset++];
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return value;
      scale *= 0x80;
    }
    throw new ProtocolError('protobuf varint too long');
  };
  while (offset < bytes.length) {
    const key = varint();
    const wire = key % 8;
    const field = Math.floor(key / 8);
    if (wire === 2) {
      const length = varint();
      if (offset + length > bytes.length) throw new ProtocolError('truncated protobuf');
      fields.push([field, bytes.subarray(offset, offset + length)]);
      offset += length;
    } else if (wire === 0) {
      varint();
    } else if (wire === 1 || wire === 5) {
      offset += wire === 1 ? 8 : 4;
    } else {
      throw new ProtocolError(`unsupported protobuf wire type ${wire}`);
    }
  }
  if (offset > bytes.length) throw new ProtocolError('truncated protobuf');
  return fields;
}
