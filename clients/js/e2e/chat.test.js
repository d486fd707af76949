// End to end in a real browser: two people open the chat page of
// `cargo run --example chat`, join, talk and see each other's messages.
//
// Needs PITAYA_CHAT_URL (the page's address, printed by the example as `page URL`); the
// Rust test examples/tests/browser.rs starts the server and sets it. Chromium comes from
// Debian (`apt-get install chromium`, done by `cargo xtask test`), never downloaded:
// CHROMIUM_PATH overrides /usr/bin/chromium. A screenshot goes to
// PITAYA_BROWSER_ARTIFACTS (default: target/browser-artifacts at the workspace root).
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './chromium.js';

const pageUrl = process.env.PITAYA_CHAT_URL;
const here = path.dirname(fileURLToPath(import.meta.url));
const artifacts =
  process.env.PITAYA_BROWSER_ARTIFACTS ?? path.resolve(here, '../../../target/browser-artifacts');
const WAIT = { timeout: 15000 };

/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  assert.ok(
    pageUrl,
    'PITAYA_CHAT_URL is not set: run `cargo test -p pitaya-examples --test browser`, which starts the chat server',
  );
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
});

/**
 * Opens the page in its own context (own cookies and storage: another person) and
 * fails the test on any script error in it.
 */
async function openChat(errors) {
  const context = await browser.newContext({ viewport: { width: 900, height: 720 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console error: ${m.text()}`);
  });
  await page.goto(pageUrl);
  await page.locator('#status', { hasText: 'Not connected' }).waitFor(WAIT);
  return page;
}

async function join(page, name) {
  await page.fill('#name', name);
  await page.click('#join');
  await page.locator('#status', { hasText: `Joined as ${name}` }).waitFor(WAIT);
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

/** Binary WebSocket frames the page receives, to check what came over the wire. */
function recordFrames(page) {
  const frames = [];
  page.on('websocket', (ws) =>
    ws.on('framereceived', ({ payload }) => {
      if (typeof payload !== 'string') frames.push(payload);
    }),
  );
  return frames;
}

async function texts(page, selector) {
  return page.locator(selector).allTextContents();
}

test('two people chat through the page', { timeout: 60000 }, async () => {
  const errors = [];
  const ana = await openChat(errors);
  const bob = await openChat(errors);
  const anaFrames = recordFrames(ana);

  await join(ana, 'ana');
  await join(bob, 'bob');
  await ana.locator('#members li', { hasText: 'bob' }).waitFor(WAIT);
  assert.deepEqual(await texts(ana, '#members li'), ['ana', 'bob']);
  assert.deepEqual(await texts(bob, '#members li'), ['ana', 'bob']);

  await say(bob, 'hello from bob');
  for (const page of [ana, bob]) {
    await page.locator('#messages li', { hasText: 'hello from bob' }).waitFor(WAIT);
  }
  await say(ana, 'hi bob, this is ana');
  for (const page of [ana, bob]) {
    await page.locator('#messages li', { hasText: 'hi bob, this is ana' }).waitFor(WAIT);
    assert.deepEqual(await texts(page, '#messages li'), [
      'bobhello from bob',
      'anahi bob, this is ana',
    ]);
  }
  // The input is cleared once the message is sent.
  assert.equal(await bob.inputValue('#text'), '');

  // The chat server compresses data (Pitaya's default): a long line comes as a zlib push
  // (packet 4, flag 0x16), which the page inflates with the browser's DecompressionStream.
  const long = `${'la '.repeat(150)}end`;
  await say(bob, long);
  await ana.locator('#messages li', { hasText: 'la la la end' }).waitFor(WAIT);
  assert.equal((await texts(ana, '#messages li')).at(-1), `bob${long}`);
  assert.ok(
    anaFrames.some((f) => f[0] === 4 && f[4] === 0x16),
    'a compressed push reached the page',
  );

  // A taken name is refused with the server's message.
  const eve = await openChat(errors);
  await eve.fill('#name', 'ana');
  await eve.click('#join');
  await eve.locator('#status', { hasText: 'ana is already in the room' }).waitFor(WAIT);
  assert.equal(await eve.isDisabled('#send'), true);
  await eve.context().close();

  await mkdir(artifacts, { recursive: true });
  const shot = path.join(artifacts, 'chat.png');
  await ana.screenshot({ path: shot, fullPage: true });
  await bob.screenshot({ path: path.join(artifacts, 'chat-bob.png'), fullPage: true });
  console.log(`screenshot: ${shot}`);

  // Leaving (which closes bob's connection) updates ana's member list.
  await bob.click('#leave');
  await bob.locator('#status', { hasText: 'Left the room' }).waitFor(WAIT);
  await ana.waitForFunction(
    () => document.querySelectorAll('#members li').length === 1,
    undefined,
    WAIT,
  );
  assert.deepEqual(await texts(ana, '#members li'), ['ana']);

  assert.deepEqual(errors, []);
});
