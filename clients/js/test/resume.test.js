// Session resume in the client (docs/resume.md), against a scripted fake server: a `ws`
// server speaking Pitaya packets that grants tokens, numbers and keeps its Data packets,
// counts the client's, and resumes or starts fresh sessions as the contract says. The
// test drives the network: `hold()` makes it lose every byte both ways (nothing read,
// nothing delivered), `cut()` ends every connection without a close frame.
//
// Needs no real server: `node --test test/resume.test.js`.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import {
  MessageType,
  PacketType,
  PitayaClient,
  decodeMessage,
  decodePackets,
  encodeMessage,
  encodePacket,
  fromUtf8,
  utf8,
} from '../src/client.js';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once `check()` is true, polling; fails after `ms`. */
async function until(check, what, ms = 5000) {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Resolves with the arguments of the next `event` on `client`. */
function next(client, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} event within ${ms} ms`)), ms);
    const off = client.on(event, (value) => {
      clearTimeout(timer);
      off();
      resolve(value);
    });
  });
}

/**
 * A fake Pitaya frontend with session resume.
 *
 * @param {object} [o]
 * @param {boolean} [o.resume] grant tokens to clients that ask (default true)
 * @param {number} [o.ttl] seconds announced
 * @param {number} [o.heartbeat] seconds announced (the server itself sends none)
 * @param {(session: Session, message: any) => void} [o.onMessage] called for each
 *   client message read; the default answers a request with its own body
 */
async function fakeServer(o = {}) {
  const options = { resume: true, ttl: 30, heartbeat: 0, ...o };
  const onMessage =
    options.onMessage ??
    ((session, m) => {
      if (m.type === MessageType.REQUEST) session.respond(m.id, m.value);
    });
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => wss.once('listening', resolve));
  /** @type {Map<string, Session>} */
  const byToken = new Map();
  let tokens = 0;
  const server = {
    /** Every handshake request, parsed. */
    handshakes: [],
    /** @type {Session[]} */
    sessions: [],
    /** Lose every byte both ways, as a dead network does, until the next `cut`. */
    held: false,
    /** Answer every resume with a fresh session. */
    forgetAll: false,
    hold() {
      server.held = true;
    },
    /** Ends every connection at once, with no close frame: the client sees a drop. */
    cut() {
      for (const socket of wss.clients) socket.terminate();
      server.held = false;
    },
    url: '',
    close: () =>
      new Promise((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve(undefined));
      }),
  };

  class Session {
    constructor() {
      this.token = `t${++tokens}`;
      /** Data packets it sent (or queued), numbered from 1. */
      this.out = [];
      /** The client's Data packets read. */
      this.read = 0;
      /** Client messages read, in order: [type, route, value]. */
      this.log = [];
      /** @type {import('ws').WebSocket | null} connection it writes to, once acked */
      this.socket = null;
      server.sessions.push(this);
      byToken.set(this.token, this);
    }

    /** Numbers and keeps one Data packet, and writes it when connected. */
    queue(message) {
      const bytes = encodePacket(PacketType.DATA, encodeMessage(message));
      this.out.push(bytes);
      if (this.socket && !server.held) this.socket.send(bytes);
    }

    respond(id, value) {
      this.queue({ type: MessageType.RESPONSE, id, data: utf8(JSON.stringify(value)) });
    }

    push(route, value) {
      this.queue({ type: MessageType.PUSH, route, data: utf8(JSON.stringify(value)) });
    }
  }

  const reply = (socket, sys) => {
    // Keys sorted, as the server writes them.
    const ordered = { dict: {}, heartbeat: options.heartbeat, ...sys, serializer: 'json' };
    const body = utf8(JSON.stringify({ code: 200, sys: ordered }));
    socket.send(encodePacket(PacketType.HANDSHAKE, body));
  };

  wss.on('connection', (socket) => {
    /** @type {Session | null} */
    let session = null;
    /** What the ack completes: the token to retire and where to replay from. */
    let onAck = () => {};
    socket.on('message', (raw) => {
      if (server.held) return;
      for (const packet of decodePackets(new Uint8Array(raw))) {
        if (packet.type === PacketType.HANDSHAKE) {
          const request = JSON.parse(fromUtf8(packet.body));
          server.handshakes.push(request);
          const asked = request.sys?.resume;
          if (!options.resume || asked === undefined) {
            session = new Session();
            reply(socket, {});
            onAck = () => {
              session.socket = socket;
            };
            continue;
          }
          const old = typeof asked === 'object' ? byToken.get(asked.token) : undefined;
          if (old && !server.forgetAll) {
            session = old;
            // The old connection, if the server has not noticed its end yet, goes first.
            if (old.socket && old.socket !== socket) old.socket.terminate();
            old.socket = null;
            const retired = old.token;
            const fresh = `t${++tokens}`;
            reply(socket, {
              resume: { received: old.read, resumed: true, token: fresh, ttl: options.ttl },
            });
            onAck = () => {
              byToken.delete(retired);
              old.token = fresh;
              byToken.set(fresh, old);
              for (const bytes of old.out.slice(asked.received)) socket.send(bytes);
              old.socket = socket;
            };
          } else {
            session = new Session();
            const resume = { token: session.token, ttl: options.ttl };
            reply(socket, { resume: typeof asked === 'object' ? { resumed: false, ...resume } : resume });
            onAck = () => {
              session.socket = socket;
            };
          }
        } else if (packet.type === PacketType.HANDSHAKE_ACK) {
          onAck();
        } else if (packet.type === PacketType.DATA && session) {
          session.read += 1;
          const m = decodeMessage(packet.body);
          const text = fromUtf8(m.data);
          m.value = text === '' ? null : JSON.parse(text);
          session.log.push([m.type, m.route, m.value]);
          onMessage(session, m);
        }
      }
    });
    socket.on('close', () => {
      if (session?.socket === socket) session.socket = null;
    });
  });
  const { port } = /** @type {import('node:net').AddressInfo} */ (wss.address());
  server.url = `ws://127.0.0.1:${port}/`;
  return server;
}

const clients = [];
const servers = [];
async function connect(url, options = {}) {
  const client = await PitayaClient.connect(url, { WebSocket, ...options });
  clients.push(client);
  return client;
}
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.close()));
});
async function start(options) {
  const server = await fakeServer(options);
  servers.push(server);
  return server;
}

describe('handshake', () => {
  test('without the option: no resume key, nothing counted or kept', async () => {
    const server = await start();
    const client = await connect(server.url);
    assert.deepEqual(Object.keys(server.handshakes[0].sys), [
      'type',
      'version',
      'platform',
      'libVersion',
      'clientBuildNumber',
      'clientVersion',
    ]);
    assert.equal(client.resumeInfo, null);
    assert.equal(await client.request('a.echo', 1), 1);
    assert.equal(client.kept.length, 0);
    // A drop ends the client, as it always did.
    const dropped = [];
    client.on('dropped', (e) => dropped.push(e));
    server.cut();
    const info = await client.closed;
    assert.equal(info.reason, 'closed by server');
    assert.deepEqual(dropped, []);
  });

  test('with the option: resume true, and the token and ttl are kept', async () => {
    const server = await start({ ttl: 7 });
    const client = await connect(server.url, { resume: true });
    assert.equal(server.handshakes[0].sys.resume, true);
    assert.deepEqual(client.resumeInfo, { token: 't1', ttl: 7, received: 0, sent: 0 });
  });

  test('a server without resume gives no token: a drop closes the client', async () => {
    const server = await start({ resume: false });
    const client = await connect(server.url, { resume: true });
    assert.equal(server.handshakes[0].sys.resume, true);
    assert.deepEqual(client.resumeInfo, { token: null, ttl: 0, received: 0, sent: 0 });
    assert.equal(await client.request('a.echo', 'x'), 'x');
    assert.equal(client.kept.length, 0, 'no copies without a token');
    server.cut();
    assert.equal((await client.closed).reason, 'closed by server');
  });
});

test('counting: Data packets only, both ways', async () => {
  const server = await start({
    heartbeat: 1,
    onMessage: (session, m) => {
      if (m.type === MessageType.REQUEST) session.respond(m.id, m.value);
      else session.push('onNote', m.value);
    },
  });
  const client = await connect(server.url, { resume: true });
  const noted = [];
  client.onPush('onNote', (v) => noted.push(v));
  // Heartbeats both ways are not counted.
  await until(() => server.sessions[0].socket !== null, 'the ack');
  server.sessions[0].socket.send(encodePacket(PacketType.HEARTBEAT));
  await client.request('a.echo', 1);
  await client.notify('a.note', 'n1');
  await client.request('a.echo', 2);
  await client.notify('a.note', 'n2');
  await until(() => noted.length === 2, 'two pushes');
  assert.deepEqual(client.resumeInfo, { token: 't1', ttl: 30, received: 4, sent: 4 });
  assert.equal(server.sessions[0].read, 4);
  assert.deepEqual(
    client.kept.map((k) => k.seq),
    [1, 2, 3, 4],
  );
});

describe('resume', () => {
  test('replays M+1.. in order, then what was queued; every answer and push once', async () => {
    /** Ids of `a.slow` requests, answered by the test. */
    const slow = [];
    const server = await start({
      onMessage: (session, m) => {
        if (m.route === 'a.slow') slow.push(m.id);
        else if (m.type === MessageType.REQUEST) session.respond(m.id, m.value);
      },
    });
    const client = await connect(server.url, { resume: true });
    const events = [];
    for (const name of ['dropped', 'resumed', 'freshSession', 'close']) {
      client.on(name, (e) => events.push([name, e]));
    }
    const pushes = [];
    client.onPush('onNews', (v) => pushes.push(v));
    const answers = [];
    const track = (p) => p.then((v) => answers.push(v));

    assert.equal(await client.request('a.echo', 'first'), 'first');
    server.sessions[0].push('onNews', 1);
    await until(() => pushes.length === 1, 'push 1');
    // Read by the server, answered while the network is dead: the answer is replayed.
    const slowAnswer = track(client.request('a.slow', 'slow'));
    await until(() => slow.length === 1, 'the slow request read');

    server.hold();
    const session = server.sessions[0];
    session.respond(slow[0], 'slow answer');
    session.push('onNews', 2);
    // Sent into the dead network: never read, so sent again.
    const lost = [track(client.request('a.echo', 'lost 1')), track(client.request('a.echo', 'lost 2'))];
    const lostNotify = client.notify('a.note', 'lost note');
    await sleep(50);
    assert.equal(session.read, 2, 'nothing read while held');

    const dropped = next(client, 'dropped');
    server.cut();
    await dropped;
    assert.equal(client.reconnecting, true);
    // Made while reconnecting: queued, sent after the replay.
    const queued = track(client.request('a.echo', 'queued'));
    const resumed = await next(client, 'resumed');
    assert.deepEqual(resumed, { received: 2, resent: 4 });
    await Promise.all([slowAnswer, ...lost, lostNotify, queued]);
    await until(() => pushes.length === 2, 'push 2');

    assert.deepEqual(answers.sort(), ['lost 1', 'lost 2', 'queued', 'slow answer']);
    assert.deepEqual(pushes, [1, 2]);
    const resumeHandshake = server.handshakes[1].sys.resume;
    assert.deepEqual(resumeHandshake, { token: 't1', received: 2 }, 'first answer and push 1');
    assert.deepEqual(
      session.log.map(([, route, value]) => [route, value]),
      [
        ['a.echo', 'first'],
        ['a.slow', 'slow'],
        ['a.echo', 'lost 1'],
        ['a.echo', 'lost 2'],
        ['a.note', 'lost note'],
        ['a.echo', 'queued'],
      ],
      'each message read once, in order',
    );
    assert.equal(server.sessions.length, 1, 'the same session');
    // first, push 1, the slow answer, push 2, lost 1, lost 2, queued.
    assert.deepEqual(client.resumeInfo, { token: 't2', ttl: 30, received: 7, sent: 6 });
    assert.deepEqual(
      events.map(([name]) => name),
      ['dropped', 'resumed'],
    );
    assert.equal(events[0][1].reason, 'closed by server');
    // And the session goes on.
    assert.equal(await client.request('a.echo', 'after'), 'after');
  });

  test('a heartbeat timeout counts as a drop', { timeout: 15000 }, async () => {
    const server = await start({ heartbeat: 1 });
    const client = await connect(server.url, { resume: true });
    const session = server.sessions[0];
    // Keeps the client's watchdog fed until the network dies.
    const beat = setInterval(() => {
      if (!server.held) session.socket?.send(encodePacket(PacketType.HEARTBEAT));
    }, 300);
    try {
      assert.equal(await client.request('a.echo', 1), 1);
      server.hold();
      const pending = client.request('a.echo', 2);
      const dropped = await next(client, 'dropped');
      assert.equal(dropped.reason, 'heartbeat timeout');
      // The server never noticed: the resume closes the old connection first.
      server.held = false;
      await next(client, 'resumed');
      assert.equal(await pending, 2);
      assert.deepEqual(
        session.log.map(([, , v]) => v),
        [1, 2],
      );
    } finally {
      clearInterval(beat);
    }
  });

  test('a fresh session fails what was in flight and restarts the counters', async () => {
    const server = await start({
      onMessage: (session, m) => {
        if (m.route !== 'a.never' && m.type === MessageType.REQUEST) session.respond(m.id, m.value);
      },
    });
    const client = await connect(server.url, { resume: true });
    assert.equal(await client.request('a.echo', 1), 1);
    const inFlight = client.request('a.never', {});
    await until(() => server.sessions[0].read === 2, 'the request read');
    server.forgetAll = true;
    const fresh = next(client, 'freshSession');
    let resumedEvents = 0;
    client.on('resumed', () => resumedEvents++);
    server.cut();
    assert.deepEqual(await fresh, { failed: 1 });
    await assert.rejects(inFlight, (e) => {
      assert.equal(e.code, 'SESSION_LOST');
      assert.match(e.message, /a\.never was lost: the server started a fresh session/);
      return true;
    });
    assert.deepEqual(server.handshakes[1].sys.resume, { token: 't1', received: 1 });
    assert.deepEqual(client.resumeInfo, { token: 't2', ttl: 30, received: 0, sent: 0 });
    assert.equal(client.connected, true);
    assert.equal(await client.request('a.echo', 'new'), 'new');
    assert.equal(server.sessions[1].read, 1, 'the new session counts from 1');
    assert.deepEqual(client.resumeInfo, { token: 't2', ttl: 30, received: 1, sent: 1 });
    assert.equal(resumedEvents, 0);
    // The new token resumes.
    server.forgetAll = false;
    server.cut();
    await next(client, 'resumed');
    assert.deepEqual(server.handshakes[2].sys.resume, { token: 't2', received: 1 });
  });

  test('reconnects back off and stop when the ttl has passed', { timeout: 10000 }, async () => {
    const server = await start({ ttl: 1 });
    const opened = [];
    class Counting extends WebSocket {
      constructor(url) {
        super(url);
        opened.push(Date.now());
      }
    }
    const client = await connect(server.url, {
      WebSocket: Counting,
      resume: true,
      reconnectDelayMs: 50,
      reconnectMaxDelayMs: 200,
    });
    const pending = client.request('a.silent', {}, { timeoutMs: 0 });
    await server.close();
    const droppedAt = Date.now();
    const info = await client.closed;
    const elapsed = Date.now() - droppedAt;
    assert.match(info.reason, /^resume failed: closed by server, no connection within the 1 s ttl$/);
    await assert.rejects(pending, (e) => e.code === 'CLOSED');
    // 50, 100, 200, 200, 200 ms: the next wait would end past the 1 s ttl (fewer on a
    // busy machine, where timers run late).
    const attempts = opened.slice(1);
    assert.ok(attempts.length >= 2 && attempts.length <= 6, `${attempts.length} attempts`);
    const gaps = attempts.map((t, i) => t - (i === 0 ? droppedAt : attempts[i - 1]));
    const planned = [50, 100, 200, 200, 200, 200];
    gaps.forEach((gap, i) => assert.ok(gap >= planned[i] - 5, `gap ${i}: ${gap} ms`));
    // No wait starts past the ttl; the slack is for a slow refusal.
    assert.ok(elapsed < 1000 + 1000, `gave up after ${elapsed} ms`);
  });

  test('a kick or close() never reconnects', async () => {
    const server = await start({
      onMessage: (session, m) => {
        if (m.route === 'a.kick') session.socket?.send(encodePacket(PacketType.KICK));
      },
    });
    const kicked = await connect(server.url, { resume: true });
    let dropped = 0;
    kicked.on('dropped', () => dropped++);
    await kicked.notify('a.kick');
    assert.equal((await kicked.closed).reason, 'kicked');

    const closing = await connect(server.url, { resume: true });
    closing.on('dropped', () => dropped++);
    await closing.disconnect();
    await sleep(100);
    assert.equal(dropped, 0);
    assert.equal(server.handshakes.length, 2, 'no reconnect');
  });

  test('packets the server needs but no longer kept: the client closes', async () => {
    const server = await start();
    const client = await connect(server.url, { resume: true, resumeBuffer: 2 });
    server.hold();
    for (let i = 0; i < 4; i++) await client.notify('a.note', i);
    assert.deepEqual(
      client.kept.map((k) => k.seq),
      [3, 4],
    );
    server.cut();
    const info = await client.closed;
    assert.equal(info.reason, 'resume failed: packet 1 is no longer kept');
  });

  test('queueing while reconnecting is bounded: BUFFER_FULL', async () => {
    const server = await start();
    const client = await connect(server.url, { resume: true, resumeBuffer: 2 });
    await server.close();
    await next(client, 'dropped');
    await client.notify('a.note', 1);
    await client.notify('a.note', 2);
    await assert.rejects(client.notify('a.note', 3), (e) => e.code === 'BUFFER_FULL');
    assert.deepEqual(
      client.kept.map((k) => k.seq),
      [1, 2],
    );
  });
});
