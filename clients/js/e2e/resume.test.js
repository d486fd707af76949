// End to end in a real browser: the JS client in a page, with `resume`, loses its socket
// for real and resumes its session on the chat server, with nothing lost or doubled.
//
// The Rust test examples/tests/browser.rs starts the chat server (resume enabled), a
// TCP proxy in front of its WebSocket port, and the chat page's server (which serves the
// client's modules), and passes:
// - PITAYA_CHAT_URL: the page, so that `/pitaya/client.js` can be imported in it;
// - PITAYA_PROXY_WS: the chat's WebSocket through the proxy (the page connects there);
// - PITAYA_PROXY_CONTROL: the proxy's control endpoint (`POST /hold`, `POST /cut`,
//   `GET /connections`);
// - PITAYA_CHAT_WS: the chat's WebSocket, direct (a second person, in node).
//
// The proxy first holds the page's connection (every byte lost both ways, as a dead
// network does) while the page sends a request and a message and the other person
// talks, then cuts it: the browser sees its socket end without a close frame.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchChromium } from './chromium.js';
import { WebSocket } from 'ws';
import { MessageType, PacketType, PitayaClient, decodeMessage, decodePackets } from '../src/client.js';

const env = Object.fromEntries(
  ['PITAYA_CHAT_URL', 'PITAYA_PROXY_WS', 'PITAYA_PROXY_CONTROL', 'PITAYA_CHAT_WS'].map((name) => [
    name,
    process.env[name],
  ]),
);
const WAIT = { timeout: 15000 };

/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  for (const [name, value] of Object.entries(env)) {
    assert.ok(
      value,
      `${name} is not set: run \`cargo test -p pitaya-examples --test browser\`, which starts the servers`,
    );
  }
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
});

/** @param {'hold' | 'cut' | 'connections'} what */
async function proxy(what) {
  const response = await fetch(`${env.PITAYA_PROXY_CONTROL}/${what}`, {
    method: what === 'connections' ? 'GET' : 'POST',
  });
  assert.equal(response.status, 200, `proxy ${what}`);
  return Number(await response.text());
}

/** Resolves once `check()` is true, polling; fails after `ms`. */
async function until(check, what, ms = 15000) {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('a page cut off mid-conversation resumes: answers and pushes once, in order', { timeout: 90000 }, async () => {
  const errors = [];
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console error: ${m.text()}`);
  });
  // Every packet the page's sockets receive, and how each socket ended.
  const sockets = [];
  page.on('websocket', (ws) => {
    const socket = { url: ws.url(), packets: [], closed: false };
    sockets.push(socket);
    ws.on('framereceived', ({ payload }) => {
      if (typeof payload !== 'string') socket.packets.push(...decodePackets(new Uint8Array(payload)));
    });
    ws.on('close', () => {
      socket.closed = true;
    });
  });
  await page.goto(env.PITAYA_CHAT_URL);

  // ana: the client in the page, through the proxy.
  await page.evaluate(async (url) => {
    const { PitayaClient: Client } = await import('/pitaya/client.js');
    const log = { messages: [], members: [], events: [], answers: [] };
    Object.assign(window, { log });
    const client = await Client.connect(url, { resume: true });
    Object.assign(window, { ana: client });
    client.onPush('onMessage', (m) => log.messages.push(`${m.from}: ${m.text}`));
    client.onPush('onMembers', (m) => log.members.push(m.members.join(',')));
    for (const name of ['dropped', 'resumed', 'freshSession', 'close']) {
      client.on(name, (e) => log.events.push([name, e]));
    }
    // Sent while the client reconnects: queued, then sent after the replay.
    client.on('dropped', () => {
      client.notify('chat.message', { text: 'sent while reconnecting' });
      client.request('chat.members').then(
        (r) => log.answers.push(['queued', r.members.join(',')]),
        (e) => log.answers.push(['queued failed', String(e)]),
      );
    });
    await client.request('chat.join', { name: 'ana' });
  }, env.PITAYA_PROXY_WS);

  // bob: a second person, in node, straight to the server.
  const bob = await PitayaClient.connect(env.PITAYA_CHAT_WS, { WebSocket });
  const bobSaw = [];
  const bobMembers = [];
  bob.onPush('onMessage', (m) => bobSaw.push(`${m.from}: ${m.text}`));
  bob.onPush('onMembers', (m) => bobMembers.push(m.members.join(',')));
  try {
    await bob.request('chat.join', { name: 'bob' });
    await page.evaluate(() => window.ana.notify('chat.message', { text: 'before the cut' }));
    await until(() => bobSaw.length === 1, 'the first message at bob');
    await page.waitForFunction(() => window.log.messages.length === 1, undefined, WAIT);

    // The network dies: the page's request and message go nowhere, and so do bob's
    // messages on their way to the page.
    assert.equal(await proxy('hold'), 1, 'one connection held');
    await page.evaluate(() => {
      window.inFlight = window.ana
        .request('chat.members')
        .then((r) => window.log.answers.push(['in flight', r.members.join(',')]));
      return window.ana.notify('chat.message', { text: 'sent into the void' });
    });
    await bob.notify('chat.message', { text: 'while ana was away 1' });
    await bob.notify('chat.message', { text: 'while ana was away 2' });
    await until(() => bobSaw.length === 3, "bob's messages handled by the server");
    assert.deepEqual(await page.evaluate(() => window.log.messages.length), 1, 'nothing reached the page');

    // The cut: the page's socket ends without a close frame, and the client resumes.
    assert.equal(await proxy('cut'), 1, 'one connection cut');
    await page.waitForFunction(
      () => window.log.events.some(([name]) => name === 'resumed' || name === 'close'),
      undefined,
      WAIT,
    );
    const events = await page.evaluate(() => window.log.events);
    assert.ok(
      events.some(([name]) => name === 'resumed'),
      `the page resumed (does the chat server enable resume?): ${JSON.stringify(events)}`,
    );
    await page.waitForFunction(() => window.log.messages.length >= 5, undefined, WAIT);
    await page.waitForFunction(() => window.log.answers.length >= 2, undefined, WAIT);
    await until(() => bobSaw.length >= 5, "ana's late messages at bob");
    // Time for anything doubled to show up.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const log = await page.evaluate(() => window.log);

    const conversation = [
      'ana: before the cut',
      'bob: while ana was away 1',
      'bob: while ana was away 2',
      'ana: sent into the void',
      'ana: sent while reconnecting',
    ];
    assert.deepEqual(log.messages, conversation, 'every push once, in order');
    assert.deepEqual(bobSaw, conversation, "each of ana's messages read once by the server");
    assert.deepEqual(log.answers, [
      ['in flight', 'ana,bob'],
      ['queued', 'ana,bob'],
    ]);
    assert.deepEqual(
      log.events.map(([name]) => name),
      ['dropped', 'resumed'],
    );
    assert.equal(log.events[0][1].reason, 'closed by server');
    // The server had read join and "before the cut"; the in-flight request, the message
    // into the void and the two queued while reconnecting went again after the ack.
    assert.deepEqual(log.events[1][1], { received: 2, resent: 4 });
    // The session stayed: ana never left the room as far as bob could tell.
    assert.deepEqual(bobMembers, ['ana,bob']);
    assert.deepEqual(await bob.request('chat.members'), { code: 200, members: ['ana', 'bob'] });

    // On the wire: two sockets, the first cut, and each answer came exactly once.
    assert.equal(await proxy('connections'), 2);
    assert.equal(sockets.length, 2);
    assert.equal(sockets[0].closed, true);
    const responses = sockets
      .flatMap((s) => s.packets)
      // Type bits of the flag byte first: pushes may carry dictionary route codes.
      .filter((p) => p.type === PacketType.DATA && ((p.body[0] >> 1) & 0x07) === MessageType.RESPONSE)
      .map((p) => decodeMessage(p.body).id);
    assert.deepEqual(responses, [1, 2, 3], 'join, in flight, queued: one answer each');
    assert.deepEqual(errors, []);
  } finally {
    await bob.close();
    await context.close();
  }
});
