// The chat page: joins the room of `cargo run --example chat` over its WebSocket acceptor
// with the project's JS client (served from clients/js/src as /pitaya/*.js).
import { PitayaClient } from './pitaya/client.js';
import { wsHost, wsPort } from './config.js';

const $ = (id) => document.getElementById(id);
const ui = {
  endpoint: $('endpoint'),
  joinForm: $('join-form'),
  name: $('name'),
  join: $('join'),
  leave: $('leave'),
  messages: $('messages'),
  members: $('members'),
  sendForm: $('send-form'),
  text: $('text'),
  send: $('send'),
  status: $('status'),
};

/** `?ws=ws://host:port/` overrides the address the server announced in /config.js. */
function socketUrl() {
  const fromQuery = new URLSearchParams(location.search).get('ws');
  if (fromQuery) return fromQuery;
  // The acceptor bound to every interface (null host): reach it where the page came from.
  const host = wsHost ?? location.hostname;
  return `ws://${host.includes(':') ? `[${host}]` : host}:${wsPort}/`;
}

const url = socketUrl();
ui.endpoint.textContent = url;

/** @type {PitayaClient | null} */
let client = null;
let me = '';

function status(text, isError = false) {
  ui.status.textContent = text;
  ui.status.classList.toggle('error', isError);
}

function setJoined(joined) {
  ui.name.disabled = joined;
  ui.join.disabled = joined;
  ui.leave.disabled = !joined;
  ui.text.disabled = !joined;
  ui.send.disabled = !joined;
  if (joined) ui.text.focus();
}

function showMembers(members) {
  ui.members.replaceChildren(
    ...members.map((name) => {
      const li = document.createElement('li');
      li.textContent = name;
      if (name === me) li.className = 'me';
      return li;
    }),
  );
}

function showMessage({ from, text }) {
  const li = document.createElement('li');
  if (from === me) li.className = 'mine';
  const who = document.createElement('span');
  who.className = 'from';
  who.textContent = from;
  li.append(who, document.createTextNode(text));
  ui.messages.append(li);
  li.scrollIntoView({ block: 'nearest' });
}

async function connected() {
  if (client?.connected) return client;
  status(`Connecting to ${url}…`);
  // Session resume (the chat server enables it): a dropped connection comes back to the
  // same session, still in the room, with the messages sent meanwhile.
  const next = await PitayaClient.connect(url, { resume: true });
  next.onPush('onMessage', showMessage);
  next.onPush('onMembers', (list) => showMembers(list.members));
  next.on('dropped', () => status('Connection lost; reconnecting…', true));
  next.on('resumed', () => status(me ? `Back as ${me}` : 'Reconnected'));
  next.on('freshSession', () => {
    // The server no longer had our session: join again.
    me = '';
    setJoined(false);
    showMembers([]);
    status('The session expired: join again', true);
  });
  next.on('close', ({ reason }) => {
    if (client !== next) return;
    client = null;
    setJoined(false);
    showMembers([]);
    status(`Disconnected: ${reason}`, reason !== 'closed by client');
  });
  client = next;
  return next;
}

ui.joinForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const name = ui.name.value.trim();
  if (!name) return;
  ui.join.disabled = true;
  try {
    const c = await connected();
    me = name;
    const joined = await c.request('chat.join', { name });
    showMembers(joined.members);
    setJoined(true);
    status(`Joined as ${name}`);
  } catch (e) {
    me = '';
    ui.join.disabled = false;
    status(e.msg ?? e.message, true);
  }
});

ui.leave.addEventListener('click', async () => {
  if (!client) return;
  try {
    await client.request('chat.leave');
    // The session keeps its name once bound: a new join needs a new connection.
    await client.close();
    status('Left the room');
  } catch (e) {
    status(e.msg ?? e.message, true);
  }
});

ui.sendForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = ui.text.value;
  if (!text || !client) return;
  try {
    await client.notify('chat.message', { text });
    ui.text.value = '';
  } catch (e) {
    status(e.msg ?? e.message, true);
  }
});
