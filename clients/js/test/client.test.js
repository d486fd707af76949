// The client against real Pitaya servers (the echo example's `room` component plus a
// `jstest` component), started by the Rust test examples/tests/js_client.rs, which passes
// their WebSocket URLs in PITAYA_JS_WS_JSON (json, 1 s heartbeat, no compression),
// PITAYA_JS_WS_DICT (route dictionary and zlib compression), PITAYA_JS_WS_PROTOBUF and
// PITAYA_JS_WS_RESUME (JSON, session resume enabled).
// Failures a real server does not produce on demand (silence, garbage, a compressed
// handshake) use small fake servers from the `ws` package.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import {
  MessageType,
  PacketType,
  PitayaClient,
  PitayaError,
  VERSION,
  decodeMessage,
  decodePackets,
  deflate,
  encodeMessage,
  encodePacket,
  utf8,
} from '../src/client.js';

/** @param {string} name */
function serverUrl(name) {
  const url = process.env[name];
  assert.ok(
    url,
    `${name} is not set: run \`cargo test -p pitaya-examples --test js_client\`, which starts the servers`,
  );
  return url;
}

/** Packets seen on the socket, both ways, decoded far enough to check flags. */
function spyingWebSocket() {
  const seen = { incoming: [], outgoing: [] };
  class Spy extends WebSocket {
    constructor(url) {
      super(url);
      this.addEventListener('message', (event) => {
        seen.incoming.push(...decodePackets(new Uint8Array(event.data)));
      });
    }

    send(data) {
      seen.outgoing.push(...decodePackets(new Uint8Array(data)));
      super.send(data);
    }
  }
  /** Flag bytes of the Data packets going one way. */
  const flags = (way) => seen[way].filter((p) => p.type === PacketType.DATA).map((p) => p.body[0]);
  const count = (way, type) => seen[way].filter((p) => p.type === type).length;
  return { WebSocket: Spy, seen, flags, count };
}

const clients = [];
/** Connects and remembers the client, so every test's connections get closed. */
async function connect(url, options = {}) {
  const client = await PitayaClient.connect(url, { WebSocket, ...options });
  clients.push(client);
  return client;
}
after(() => Promise.all(clients.map((c) => c.close())));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with the next push on `route`, or fails after `ms`. */
function nextPush(client, route, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${route} push within ${ms} ms`)), ms);
    const off = client.onPush(route, (value, push) => {
      clearTimeout(timer);
      off();
      resolve({ value, push });
    });
  });
}

describe('json server', () => {
  // A generous factor: these tests are not about the server-timeout detection, and the
  // server's 1 s heartbeat would otherwise make a busy CI machine look like a dead server.
  const options = { heartbeatTimeoutFactor: 10 };

  test('handshake sends sys and user data and reads the server settings', async () => {
    const client = await connect(serverUrl('PITAYA_JS_WS_JSON'), {
      ...options,
      user: { level: 7, name: 'ana' },
      clientVersion: '1.2.3',
      clientBuildNumber: '42',
    });
    assert.deepEqual(client.handshake, { heartbeat: 1, serializer: 'json', dict: {} });
    assert.equal(client.connected, true);
    const seen = await client.request('jstest.whoami');
    assert.deepEqual(seen, {
      sys: { platform: 'js', libVersion: VERSION, clientBuildNumber: '42', clientVersion: '1.2.3' },
      user: { level: 7, name: 'ana' },
    });
  });

  test('requests: JSON values, raw bytes and many at once', async () => {
    const client = await connect(serverUrl('PITAYA_JS_WS_JSON'), options);
    const value = { text: 'olá 👋', list: [1, 2.5, null, true], nested: { a: 'b' } };
    assert.deepEqual(await client.request('room.echojson', value), value);
    const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff);
    const echoed = await client.request('room.echo', bytes, { raw: true });
    assert.deepEqual(new Uint8Array(echoed), bytes);
    // Ids keep concurrent answers apart.
    const answers = await Promise.all(
      Array.from({ length: 25 }, (_, i) => client.request('room.echojson', { i })),
    );
    assert.deepEqual(answers, Array.from({ length: 25 }, (_, i) => ({ i })));
  });

  test('notify and push by route', async () => {
    const client = await connect(serverUrl('PITAYA_JS_WS_JSON'), options);
    const all = [];
    client.on('push', (value, push) => all.push([push.route, value]));
    const pushed = nextPush(client, 'onNotify');
    await client.notify('room.notify', { hello: 'push' });
    const { value, push } = await pushed;
    assert.deepEqual(value, { hello: 'push' });
    assert.equal(push.route, 'onNotify');
    assert.deepEqual(all, [['onNotify', { hello: 'push' }]]);
  });

  test('error replies reject with code, msg and metadata', async () => {
    const client = await connect(serverUrl('PITAYA_JS_WS_JSON'), options);
    const check = (code, msg, metadata = {}) => (e) => {
      assert.ok(e instanceof PitayaError, String(e));
      assert.equal(e.code, code);
      assert.equal(e.msg, msg);
      assert.deepEqual(e.metadata, metadata);
      return true;
    };
    await assert.rejects(client.request('room.fail'), check('PIT-499', 'fail'));
    await assert.rejects(
      client.request('jstest.meta'),
      check('PIT-433', 'with metadata', { route: 'jstest.meta', why: 'testing' }),
    );
    await assert.rejects(client.request('room.missing'), (e) => e.code === 'PIT-404');
    await assert.rejects(client.request('room.notify', {}), (e) => e.code === 'PIT-400');
    // The connection survives errors.
    assert.deepEqual(await client.request('room.echojson', [1]), [1]);
  });

  test('a handshake refused by a validator rejects connect', async () => {
    await assert.rejects(
      connect(serverUrl('PITAYA_JS_WS_JSON'), { ...options, user: { reject: true } }),
      (e) => e instanceof PitayaError && e.code === '400',
    );
  });

  test('kick closes with the reason and fails what is pending', async () => {
    const client = await connect(serverUrl('PITAYA_JS_WS_JSON'), options);
    let kicked = 0;
    client.on('kick', () => kicked++);
    await client.notify('jstest.kick');
    const info = await client.closed;
    assert.equal(info.reason, 'kicked');
    assert.equal(info.kicked, true);
    assert.equal(kicked, 1);
    assert.equal(client.connected, false);
    await assert.rejects(client.request('room.echojson', {}), (e) => e.code === 'CLOSED');
    await assert.rejects(client.notify('room.notify', {}), (e) => e.code === 'CLOSED');
  });

  test('heartbeats both ways keep an idle connection open', { timeout: 20000 }, async () => {
    const spy = spyingWebSocket();
    const client = await connect(serverUrl('PITAYA_JS_WS_JSON'), {
      ...options,
      WebSocket: spy.WebSocket,
    });
    // The server closes a client silent for 2 to 3 intervals (spec §1.6): 1 s here.
    await sleep(3500);
    assert.equal(client.connected, true);
    assert.ok(spy.count('outgoing', PacketType.HEARTBEAT) >= 2, 'client heartbeats');
    assert.ok(spy.count('incoming', PacketType.HEARTBEAT) >= 2, 'server heartbeats');
    assert.equal(spy.count('outgoing', PacketType.HANDSHAKE_ACK), 1);
    assert.deepEqual(await client.request('room.echojson', 'still here'), 'still here');
  });

  test('close fails pending requests and later calls', async () => {
    const client = await connect(serverUrl('PITAYA_JS_WS_JSON'), options);
    const pending = client.request('room.echojson', {});
    const info = await client.close();
    assert.deepEqual(info, { reason: 'closed by client', kicked: false });
    await assert.rejects(pending, (e) => e.code === 'CLOSED');
    await assert.rejects(client.request('room.echojson', {}), (e) => e.code === 'CLOSED');
  });
});

describe('server with route dictionary and compression', () => {
  test('routes go out as codes and come back resolved; data is inflated', async () => {
    const spy = spyingWebSocket();
    const client = await connect(serverUrl('PITAYA_JS_WS_DICT'), { WebSocket: spy.WebSocket });
    assert.equal(typeof client.handshake.dict['room.echojson'], 'number');
    assert.equal(typeof client.handshake.dict.onNotify, 'number');

    const big = { text: 'a chat line that repeats. '.repeat(100) };
    assert.deepEqual(await client.request('room.echojson', big), big);
    const [request] = spy.flags('outgoing');
    assert.equal(request, 0x01, 'request with a dictionary route');
    const [response] = spy.flags('incoming');
    assert.equal(response, 0x14, 'zlib-compressed response');

    const pushed = nextPush(client, 'onNotify');
    await client.notify('room.notify', big);
    assert.deepEqual((await pushed).value, big);
    assert.equal(spy.flags('outgoing')[1], 0x03, 'notify with a dictionary route');
    assert.equal(spy.flags('incoming')[1], 0x17, 'compressed push with a dictionary route');
  });

  test('compressRequests deflates outgoing data the server accepts', async () => {
    const spy = spyingWebSocket();
    const client = await connect(serverUrl('PITAYA_JS_WS_DICT'), {
      WebSocket: spy.WebSocket,
      compressRequests: true,
    });
    const big = { text: 'zlib '.repeat(500) };
    assert.deepEqual(await client.request('room.echojson', big), big);
    // Too short to shrink: sent plain.
    assert.deepEqual(await client.request('room.echojson', 1), 1);
    assert.deepEqual(spy.flags('outgoing'), [0x11, 0x01]);
  });
});

describe('protobuf server', () => {
  test('bodies are bytes and errors are protos.Error', async () => {
    const client = await connect(serverUrl('PITAYA_JS_WS_PROTOBUF'));
    assert.equal(client.handshake.serializer, 'protobuf');
    const bytes = new Uint8Array([8, 150, 1]);
    assert.deepEqual(new Uint8Array(await client.request('room.echo', bytes)), bytes);
    await assert.rejects(client.request('room.fail'), (e) => {
      assert.ok(e instanceof PitayaError);
      assert.equal(e.code, 'PIT-499');
      assert.equal(e.msg, 'fail');
      return true;
    });
    await assert.rejects(client.request('room.echo', { not: 'bytes' }), TypeError);
  });
});

describe('server with session resume', () => {
  /** A spying socket the test can cut: its TCP connection ends with no close frame. */
  function cuttable() {
    const spy = spyingWebSocket();
    const sockets = [];
    class Cuttable extends spy.WebSocket {
      constructor(url) {
        super(url);
        sockets.push(this);
      }
    }
    // `_socket` is the `ws` package's net.Socket: destroying it is a dropped connection.
    const cut = () => sockets.at(-1)._socket.destroy();
    return { ...spy, WebSocket: Cuttable, sockets, cut };
  }

  /** The handshake response the spy saw, parsed. */
  const handshakeResponse = (spy) =>
    JSON.parse(new TextDecoder().decode(spy.seen.incoming.find((p) => p.type === PacketType.HANDSHAKE).body));

  test('a token and ttl only when asked', async () => {
    const plainSpy = spyingWebSocket();
    const plain = await connect(serverUrl('PITAYA_JS_WS_RESUME'), { WebSocket: plainSpy.WebSocket });
    assert.equal(plain.resumeInfo, null);
    assert.equal('resume' in handshakeResponse(plainSpy).sys, false);

    const spy = spyingWebSocket();
    const client = await connect(serverUrl('PITAYA_JS_WS_RESUME'), { WebSocket: spy.WebSocket, resume: true });
    const { token, ttl } = handshakeResponse(spy).sys.resume;
    assert.equal(typeof token, 'string');
    assert.deepEqual(client.resumeInfo, { token, ttl: 30, received: 0, sent: 0 });
  });

  test('cut amid 100 requests and 100 pushes: each answer and push once, in order', { timeout: 20000 }, async () => {
    const c = cuttable();
    const client = await connect(serverUrl('PITAYA_JS_WS_RESUME'), { WebSocket: c.WebSocket, resume: true });
    const pushes = [];
    client.onPush('onNotify', (v) => pushes.push(v.n));
    const events = [];
    for (const name of ['dropped', 'resumed', 'freshSession', 'close']) {
      client.on(name, (e) => events.push([name, e]));
    }
    const requests = [];
    const burst = (from, to) => {
      for (let i = from; i < to; i++) {
        requests.push(client.request('room.echojson', { i }));
        client.notify('room.notify', { n: i }).catch(() => {});
      }
    };
    burst(0, 50);
    await requests[9];
    // Some answers are on their way, some requests read, and the last 50 not yet handed
    // to the socket (the outbox runs after this tick): they go into a dead socket.
    burst(50, 100);
    c.cut();
    const answers = await Promise.all(requests);
    assert.deepEqual(answers, Array.from({ length: 100 }, (_, i) => ({ i })));
    const started = Date.now();
    while (pushes.length < 100 && Date.now() - started < 10000) await sleep(10);
    await sleep(100);
    assert.deepEqual(pushes, Array.from({ length: 100 }, (_, i) => i), 'every push once, in order');
    assert.deepEqual(
      events.map(([name]) => name),
      ['dropped', 'resumed'],
    );
    // The last 100 messages went into a dead socket: the server never read them.
    const { received, resent } = events[1][1];
    assert.ok(resent >= 100 && received + resent === 200, `resumed: ${JSON.stringify(events[1][1])}`);
    assert.equal(c.sockets.length, 2);
    // On the wire, both sockets together: one answer per request.
    const ids = c.seen.incoming
      .filter((p) => p.type === PacketType.DATA && ((p.body[0] >> 1) & 0x07) === MessageType.RESPONSE)
      .map((p) => decodeMessage(p.body).id)
      .sort((a, b) => a - b);
    assert.deepEqual(ids, [...new Set(ids)], 'no answer twice');
    assert.equal(ids.length, 100);
    assert.deepEqual(await client.request('room.echojson', 'after'), 'after');
    assert.equal(client.resumeInfo.sent, 201);
    assert.equal(client.resumeInfo.received, 201);
  });

  test('an unknown token gets a fresh session: what was in flight fails', async () => {
    const c = cuttable();
    const client = await connect(serverUrl('PITAYA_JS_WS_RESUME'), { WebSocket: c.WebSocket, resume: true });
    assert.deepEqual(await client.request('room.echojson', 1), 1);
    const old = client.resumeInfo.token;
    // As if the server had forgotten the session (expired, restarted).
    client.resumeToken = 'not-a-token';
    const inFlight = client.request('room.echojson', 2);
    c.cut();
    const fresh = await new Promise((resolve) => client.on('freshSession', resolve));
    assert.deepEqual(fresh, { failed: 1 });
    await assert.rejects(inFlight, (e) => e.code === 'SESSION_LOST');
    const { token, received, sent } = client.resumeInfo;
    assert.notEqual(token, old);
    assert.equal(typeof token, 'string');
    assert.deepEqual([received, sent], [0, 0]);
    const resumeAnswer = JSON.parse(
      new TextDecoder().decode(c.seen.incoming.filter((p) => p.type === PacketType.HANDSHAKE)[1].body),
    ).sys.resume;
    assert.deepEqual(resumeAnswer, { resumed: false, token, ttl: 30 });
    assert.deepEqual(await client.request('room.echojson', 3), 3);
  });

  test('a kick ends a resumable session: no reconnect', async () => {
    const c = cuttable();
    const client = await connect(serverUrl('PITAYA_JS_WS_RESUME'), { WebSocket: c.WebSocket, resume: true });
    let dropped = 0;
    client.on('dropped', () => dropped++);
    await client.notify('jstest.kick');
    assert.equal((await client.closed).reason, 'kicked');
    await sleep(100);
    assert.equal(dropped, 0);
    assert.equal(c.sockets.length, 1);
  });
});

/**
 * A fake server: answers the handshake with `response` (a JSON value, or raw bytes),
 * then hands each later client packet to `onPacket(socket, packet)`.
 */
async function fakeServer(response, onPacket = () => {}) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => wss.once('listening', resolve));
  wss.on('connection', (socket) => {
    socket.on('message', (data) => {
      for (const packet of decodePackets(new Uint8Array(data))) {
        if (packet.type === PacketType.HANDSHAKE) {
          const body = response instanceof Uint8Array ? response : utf8(JSON.stringify(response));
          socket.send(encodePacket(PacketType.HANDSHAKE, body));
        } else {
          onPacket(socket, packet);
        }
      }
    });
  });
  const { port } = /** @type {import('node:net').AddressInfo} */ (wss.address());
  return {
    url: `ws://127.0.0.1:${port}/`,
    close: () =>
      new Promise((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve(undefined));
      }),
  };
}

const ok = (sys = {}) => ({ code: 200, sys: { heartbeat: 0, serializer: 'json', dict: {}, ...sys } });

describe('misbehaving servers', () => {
  test('a silent server is detected by the heartbeat timeout', { timeout: 15000 }, async () => {
    const server = await fakeServer(ok({ heartbeat: 1 }));
    try {
      const client = await connect(server.url);
      const started = Date.now();
      const info = await client.closed;
      assert.equal(info.reason, 'heartbeat timeout');
      assert.ok(Date.now() - started >= 1500, 'not before two intervals');
    } finally {
      await server.close();
    }
  });

  test('an unanswered request times out with PIT-504', async () => {
    const server = await fakeServer(ok());
    try {
      const client = await connect(server.url, { requestTimeoutMs: 200 });
      await assert.rejects(client.request('a.b', {}), (e) => e.code === 'PIT-504');
      assert.equal(client.connected, true);
    } finally {
      await server.close();
    }
  });

  test('a zlib- or gzip-compressed handshake response is read', async () => {
    const json = utf8(JSON.stringify(ok({ heartbeat: 5, dict: { 'room.join': 3, onChat: 4 } })));
    const gzip = new Uint8Array(
      await new Response(new Blob([json]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer(),
    );
    for (const body of [await deflate(json), gzip]) {
      const server = await fakeServer(body, (socket, packet) => {
        if (packet.type !== PacketType.DATA) return;
        const message = decodeMessage(packet.body, new Map([[3, 'room.join']]));
        if (message.type === MessageType.REQUEST) {
          const reply = encodeMessage({ type: MessageType.RESPONSE, id: message.id, data: utf8('"joined"') });
          socket.send(encodePacket(PacketType.DATA, reply));
        }
      });
      try {
        const client = await connect(server.url);
        assert.deepEqual(client.handshake.dict, { 'room.join': 3, onChat: 4 });
        assert.equal(client.handshake.heartbeat, 5);
        assert.equal(await client.request('room.join'), 'joined');
        await client.close();
      } finally {
        await server.close();
      }
    }
  });

  test('garbage from the server closes the connection with a protocol error', async () => {
    const server = await fakeServer(ok(), (socket, packet) => {
      if (packet.type === PacketType.DATA) socket.send(new Uint8Array([9, 0, 0, 0]));
    });
    try {
      const client = await connect(server.url);
      const pending = client.request('a.b', {});
      await assert.rejects(pending, (e) => e.code === 'CLOSED');
      const info = await client.closed;
      assert.match(info.reason, /^protocol error: unknown packet type 0x9/);
    } finally {
      await server.close();
    }
  });

  test('a server that hangs up fails pending requests', async () => {
    const server = await fakeServer(ok(), (socket, packet) => {
      if (packet.type === PacketType.DATA) socket.close(1001);
    });
    try {
      const client = await connect(server.url);
      await assert.rejects(client.request('a.b', {}), (e) => e.code === 'CLOSED');
      assert.deepEqual(await client.closed, { reason: 'closed by server', kicked: false, code: 1001 });
    } finally {
      await server.close();
    }
  });

  test('nothing listening: connect rejects', async () => {
    const server = await fakeServer(ok());
    const { url } = server;
    await server.close();
    await assert.rejects(connect(url), (e) => e instanceof PitayaError && e.code === 'CLOSED');
  });

  test('a refused handshake names its code', async () => {
    const server = await fakeServer({ code: 500, sys: {} });
    try {
      await assert.rejects(connect(server.url), (e) => e.code === '500');
    } finally {
      await server.close();
    }
  });
});
