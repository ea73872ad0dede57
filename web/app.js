// The demo chat page: rooms, presence, history, private messages and the
// connection's life, on top of roomcast.js. Served by every node at `/`.
//
// URL parameters (all optional): `user` (sign in at once as this name),
// `rooms` (comma-separated, default chat:lobby), `ws` (comma-separated
// WebSocket URLs to use, in fail-over order; default this page's node),
// `token` (a JWT, for nodes with --jwt-secret).
//
// Chat messages are `{text, ts}` objects in `data`; presence and history
// frames come from the `chat` room logic (examples/chat.cpp) and are
// optional: without them the page still chats, it just cannot say who is
// in a room.

import { NAME_RE, RoomcastClient } from './roomcast.js';

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const params = new URLSearchParams(location.search);

/** Makes an element: el('li', {class: 'x', dataset: {a: 1}}, 'text', child…). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

// -- state ----------------------------------------------------------------------------------

/**
 * One conversation: a room or a private thread with one user.
 * @typedef {object} Conv
 * @property {string} key `room:<name>` or `dm:<user>`
 * @property {'room'|'dm'} kind
 * @property {string} name the room or the other user
 * @property {HTMLElement} list its messages (only the active one is shown)
 * @property {number} unread
 * @property {Set<string> | null} members who is in the room (null: unknown)
 * @property {Set<string>} seen `epoch:seq` of room messages shown (history replays)
 * @property {{from: number, to: number, node: HTMLElement}[]} gaps unfilled gaps
 * @property {string | undefined} lastFrom sender of the last message (grouping)
 * @property {number} lastAt time of the last message
 * @property {boolean} joined
 */

const app = {
  /** @type {RoomcastClient | null} */ client: null,
  me: '',
  /** @type {Map<string, Conv>} */ convs: new Map(),
  /** @type {string | null} */ active: null,
  reconnects: 0,
  /** @type {any} */ countdown: null,
  everOpen: false,
};
// For the console and for tests: window.roomcastDemo.client is the client.
Object.defineProperty(window, 'roomcastDemo', { value: app });

// -- sign in -----------------------------------------------------------------------------------

function wsUrls() {
  const given = (params.get('ws') || /** @type {HTMLInputElement} */ ($('login-ws')).value || '').split(',').map((s) => s.trim()).filter(Boolean);
  if (given.length) return given;
  return [`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`];
}

function roomName(text) {
  const t = text.trim().replace(/^#/, '');
  return t.includes(':') ? t : `chat:${t}`;
}

function initLogin() {
  const form = /** @type {HTMLFormElement} */ ($('login-form'));
  const name = /** @type {HTMLInputElement} */ ($('login-name'));
  const rooms = /** @type {HTMLInputElement} */ ($('login-rooms'));
  name.value = params.get('user') || localStorage.getItem('roomcast.name') || '';
  if (params.get('rooms') || params.get('room')) rooms.value = params.get('rooms') || params.get('room') || '';
  if (params.get('ws')) {
    /** @type {HTMLInputElement} */ ($('login-ws')).value = params.get('ws') || '';
    /** @type {HTMLDetailsElement} */ ($('login-advanced')).open = true;
  }
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const user = name.value.trim();
    const wanted = rooms.value.split(',').map((r) => r.trim()).filter(Boolean).map(roomName);
    const bad = [user, ...wanted].find((n) => !NAME_RE.test(n));
    if (bad !== undefined) {
      $('login-error').textContent = `"${bad}" is not a valid name: use letters, digits and _ . : @ - (up to 128).`;
      return;
    }
    localStorage.setItem('roomcast.name', user);
    start(user, wanted.length ? wanted : ['chat:lobby']);
  });
  if (params.get('user')) form.requestSubmit();
}

// -- the client ---------------------------------------------------------------------------------

/**
 * @param {string} user
 * @param {string[]} rooms
 */
function start(user, rooms) {
  app.me = user;
  $('login').hidden = true;
  $('app').hidden = false;
  $('me-name').textContent = user;
  paintAvatar($('me-avatar'), user);
  const token = params.get('token') || undefined;
  const client = new RoomcastClient(wsUrls(), {
    user, token, backoff: { initial: 300, max: 8000 },
  });
  app.client = client;

  client.on('state', ({ state }) => showState(state));
  client.on('welcome', (w) => {
    log(`${app.everOpen ? 'reconnected' : 'connected'} to ${w.node} as ${w.user}`, 'good');
    if (app.everOpen) {
      app.reconnects++;
      for (const conv of app.convs.values())
        if (conv.kind === 'room') system(conv, `Reconnected (node ${w.node}).`, 'good');
    }
    app.everOpen = true;
    showFacts();
  });
  client.on('close', (c) => {
    // The state is still that of the socket that closed.
    if (client.state === 'open') log(`connection to ${shortUrl(c.url)} lost (${c.code}${c.reason ? ` ${c.reason}` : ''})`, 'bad');
    else log(`could not connect to ${shortUrl(c.url)}`);
  });
  client.on('reconnecting', (r) => {
    log(`retry #${r.attempt} in ${(r.delay / 1000).toFixed(1)} s → ${shortUrl(r.url)}`);
    startCountdown(r.delay, r.attempt, r.url);
  });
  client.on('joined', (j) => {
    const conv = ensureConv('room', j.room);
    const wasJoined = conv.joined;
    conv.joined = true;
    renderLists();
    if (!wasJoined && j.id === undefined) log(`${j.room} moved: fresh join (epoch ${j.epoch})`);
    if (conv.key === app.active) renderHeader();
    // Without presence from the room logic, the member list stays unknown.
    setTimeout(() => { if (conv.key === app.active) renderMembers(); }, 1500);
  });
  client.on('message', (m) => {
    const conv = ensureConv('room', m.room);
    addMessage(conv, { from: m.from, data: m.data, seq: m.seq, epoch: client.roomInfo(m.room)?.epoch });
    if (conv.key === app.active) renderHeader();
  });
  client.on('private', (p) => {
    const conv = ensureConv('dm', p.from);
    addMessage(conv, { from: p.from, data: p.data });
  });
  client.on('broadcast', (b) => {
    for (const conv of app.convs.values())
      if (conv.kind === 'room') system(conv, `Broadcast from ${b.from}: ${textOf(b.data)}`, 'broadcast');
  });
  client.on('presence', onPresence);
  client.on('history', onHistory);
  client.on('gap', (g) => {
    const conv = ensureConv('room', g.room);
    if (g.reason === 'epoch') {
      system(conv, 'The room restarted on another node: messages from before may be gone.', 'warn');
      log(`${g.room}: new epoch ${g.epoch}`, 'warn');
      conv.seen.clear();
    } else {
      const node = system(conv, `Missed ${g.missed} message${g.missed === 1 ? '' : 's'} while away.`, 'warn');
      conv.gaps.push({ from: g.from, to: g.to, node });
      log(`${g.room}: missed ${g.from}–${g.to}`, 'warn');
    }
  });
  client.on('error', (err) => {
    if (err.code === 'socket_error') return; // a close follows and says it better
    log(`${err.code}: ${err.message}`, 'bad');
    if (err.room) system(ensureConv('room', err.room), `⚠ ${err.message}`, 'warn');
  });

  for (const room of rooms) joinRoom(room, room === rooms[0]);
  client.connect().catch((err) => log(`gave up: ${err.message}`, 'bad'));
  initChatUi();
}

/** @param {string} room @param {boolean} [focus] */
function joinRoom(room, focus = true) {
  const conv = ensureConv('room', room);
  if (focus) activate(conv.key);
  app.client?.join(room).catch((err) => {
    system(conv, `Could not join ${room}: ${err.message}`, 'warn');
    conv.joined = false;
    renderLists();
  });
}

/** @param {string} room */
async function leaveRoom(room) {
  const conv = app.convs.get(`room:${room}`);
  try {
    await app.client?.leave(room);
  } catch (err) {
    if (err.code !== 'not_member') return log(`leave ${room}: ${err.message}`, 'bad');
  }
  if (!conv) return;
  conv.list.remove();
  app.convs.delete(conv.key);
  if (app.active === conv.key) activate([...app.convs.keys()][0] ?? null);
  renderLists();
}

// -- presence and history (from the chat room logic) ------------------------------------------------

/** @param {any} p */
function onPresence(p) {
  const conv = ensureConv('room', p.room);
  if (Array.isArray(p.members)) {
    conv.members = new Set(p.members);
  } else {
    conv.members ??= new Set([app.me]);
    if (p.joined) {
      if (!conv.members.has(p.joined)) system(conv, `${p.joined} joined`, 'presence');
      conv.members.add(p.joined);
    }
    if (p.left) {
      conv.members.delete(p.left);
      system(conv, `${p.left} left`, 'presence');
    }
  }
  if (conv.key === app.active) { renderMembers(); renderHeader(); }
}

/** @param {any} h */
function onHistory(h) {
  const conv = ensureConv('room', h.room);
  const epoch = app.client?.roomInfo(h.room)?.epoch;
  const fresh = (h.messages || []).filter((m) => !conv.seen.has(`${epoch}:${m.seq}`));
  if (fresh.length && conv.list.childElementCount === 0) system(conv, `Earlier messages`, 'divider');
  for (const m of fresh) addMessage(conv, { from: m.from, data: m.data, seq: m.seq, epoch, history: true });
  // Gaps the history filled are no longer gaps.
  const have = new Set((h.messages || []).map((m) => m.seq));
  conv.gaps = conv.gaps.filter((g) => {
    for (let s = g.from; s <= g.to; s++) if (!have.has(s)) return true;
    g.node.textContent = `Caught up on ${g.to - g.from + 1} message${g.to === g.from ? '' : 's'} missed while away.`;
    g.node.className = 'sys good';
    return false;
  });
}

// -- conversations -----------------------------------------------------------------------------------

/** @param {'room'|'dm'} kind @param {string} name @returns {Conv} */
function ensureConv(kind, name) {
  const key = `${kind}:${name}`;
  let conv = app.convs.get(key);
  if (!conv) {
    conv = {
      key, kind, name, list: el('ol', { class: 'msg-list', dataset: { conv: key } }), unread: 0,
      members: kind === 'dm' ? new Set([app.me, name]) : null, seen: new Set(), gaps: [],
      lastFrom: undefined, lastAt: 0, joined: false,
    };
    conv.list.hidden = true;
    $('messages').append(conv.list);
    app.convs.set(key, conv);
    if (!app.active) activate(key);
    renderLists();
  }
  return conv;
}

/** @param {string | null} key */
function activate(key) {
  app.active = key;
  for (const conv of app.convs.values()) conv.list.hidden = conv.key !== key;
  const conv = key ? app.convs.get(key) : null;
  if (conv) conv.unread = 0;
  renderLists();
  renderHeader();
  renderMembers();
  scrollToEnd(true);
  const input = /** @type {HTMLTextAreaElement} */ ($('composer-input'));
  input.placeholder = conv ? (conv.kind === 'room' ? `Message ${conv.name}` : `Message @${conv.name} privately`) : 'Join a room to talk';
  if (conv) input.focus();
}

function activeConv() {
  return app.active ? app.convs.get(app.active) ?? null : null;
}

/**
 * @param {Conv} conv
 * @param {{from: string, data: any, seq?: number, epoch?: string, history?: boolean, mine?: boolean}} m
 * @returns {HTMLElement}
 */
function addMessage(conv, m) {
  if (m.seq !== undefined && m.epoch !== undefined) {
    const id = `${m.epoch}:${m.seq}`;
    if (conv.seen.has(id)) return /** @type {any} */ (null);
    conv.seen.add(id);
  }
  const at = typeof m.data?.ts === 'number' ? m.data.ts : Date.now();
  const grouped = conv.lastFrom === m.from && at - conv.lastAt < 5 * 60 * 1000;
  conv.lastFrom = m.from;
  conv.lastAt = at;
  const mine = m.from === app.me;
  const item = el('li', {
    class: `msg${mine ? ' mine' : ''}${grouped ? ' grouped' : ''}${m.history ? ' history' : ''}`,
    dataset: { from: m.from, ...(m.seq !== undefined ? { seq: String(m.seq) } : {}) },
  });
  const avatar = el('span', { class: 'avatar', 'aria-hidden': 'true' });
  paintAvatar(avatar, m.from);
  const head = el('div', { class: 'msg-head' },
    el('button', { class: 'who', type: 'button', title: mine ? 'you' : `Message ${m.from} privately`, onclick: () => { if (!mine) activate(ensureConv('dm', m.from).key); } }, m.from),
    el('time', { datetime: new Date(at).toISOString(), title: new Date(at).toLocaleString() }, formatTime(at)),
    el('span', { class: 'status' }));
  item.append(avatar, el('div', { class: 'msg-body' }, head, el('div', { class: 'text' }, textOf(m.data))));
  append(conv, item);
  if (conv.key !== app.active || document.hidden) {
    if (!mine && !m.history) conv.unread++;
    renderLists();
  }
  return item;
}

/**
 * A line from the page itself (presence, gaps, reconnects).
 * @param {Conv} conv @param {string} text @param {string} [kind]
 */
function system(conv, text, kind = '') {
  const item = el('li', { class: `sys ${kind}` }, text);
  conv.lastFrom = undefined;
  append(conv, item);
  return item;
}

/** @param {Conv} conv @param {HTMLElement} item */
function append(conv, item) {
  const box = $('messages');
  const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  conv.list.append(item);
  while (conv.list.childElementCount > 1000) conv.list.firstElementChild?.remove();
  if (conv.key === app.active) scrollToEnd(atEnd);
}

function scrollToEnd(force) {
  const box = $('messages');
  if (force) box.scrollTop = box.scrollHeight;
}

// -- sending ------------------------------------------------------------------------------------------

const HELP = [
  '/join ROOM: join a room (chat: is added when there is no prefix)',
  '/leave: leave this room',
  '/msg USER TEXT: message a user privately',
  '/broadcast TEXT: message every connection of the cluster',
  '/help: this list',
];

/** @param {string} text */
function submit(text) {
  const conv = activeConv();
  if (text.startsWith('/')) {
    const [cmd, ...rest] = text.slice(1).split(' ');
    const arg = rest.join(' ').trim();
    switch (cmd) {
      case 'join': return arg && joinRoom(roomName(arg));
      case 'leave': return conv?.kind === 'room' && leaveRoom(conv.name);
      case 'msg': {
        const [to, ...words] = arg.split(' ');
        if (!NAME_RE.test(to || '')) return conv && system(conv, 'usage: /msg USER TEXT', 'warn');
        const dm = ensureConv('dm', to);
        activate(dm.key);
        if (words.length) sendTo(dm, words.join(' '));
        return;
      }
      case 'broadcast':
        return arg && app.client?.broadcast({ text: arg, ts: Date.now() })
          .catch((err) => conv && system(conv, `broadcast refused: ${err.message}`, 'warn'));
      default:
        if (conv) for (const line of HELP) system(conv, line, 'help');
        return;
    }
  }
  if (conv) sendTo(conv, text);
}

/** Shows the message at once, marks it sent on ack, failed on error. @param {Conv} conv @param {string} text */
async function sendTo(conv, text) {
  const data = { text, ts: Date.now() };
  const item = addMessage(conv, { from: app.me, data });
  item.classList.add('pending');
  const status = /** @type {HTMLElement} */ (item.querySelector('.status'));
  status.textContent = app.client?.state === 'open' ? 'sending…' : 'queued';
  try {
    const ack = conv.kind === 'room'
      ? await app.client?.publish(conv.name, data)
      : await app.client?.send(conv.name, data);
    item.classList.remove('pending');
    status.textContent = '✓';
    if (ack?.seq !== undefined) {
      status.title = `seq ${ack.seq}`;
      item.dataset.seq = String(ack.seq);
      const epoch = app.client?.roomInfo(conv.name)?.epoch;
      if (epoch) conv.seen.add(`${epoch}:${ack.seq}`);
    }
  } catch (err) {
    item.classList.remove('pending');
    item.classList.add('failed');
    status.textContent = `not sent: ${err.code}`;
    status.title = err.message;
  }
}

function initChatUi() {
  const input = /** @type {HTMLTextAreaElement} */ ($('composer-input'));
  const grow = () => { input.style.height = 'auto'; input.style.height = `${Math.min(input.scrollHeight, 160)}px`; };
  input.addEventListener('input', grow);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $('composer').dispatchEvent(new Event('submit', { cancelable: true }));
    }
  });
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    grow();
    submit(text);
  });
  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const field = /** @type {HTMLInputElement} */ ($('join-input'));
    const room = roomName(field.value);
    if (!field.value.trim()) return;
    if (!NAME_RE.test(room)) { field.setCustomValidity('letters, digits and _ . : @ -'); field.reportValidity(); return; }
    field.setCustomValidity('');
    field.value = '';
    joinRoom(room);
  });
  $('dm-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const field = /** @type {HTMLInputElement} */ ($('dm-input'));
    const user = field.value.trim().replace(/^@/, '');
    if (!NAME_RE.test(user)) { field.setCustomValidity('letters, digits and _ . : @ -'); field.reportValidity(); return; }
    field.setCustomValidity('');
    field.value = '';
    activate(ensureConv('dm', user).key);
  });
  $('leave-btn').addEventListener('click', () => {
    const conv = activeConv();
    if (!conv) return;
    if (conv.kind === 'room') leaveRoom(conv.name);
    else {
      conv.list.remove();
      app.convs.delete(conv.key);
      activate([...app.convs.keys()][0] ?? null);
    }
  });
  $('sign-out').addEventListener('click', () => {
    app.client?.close();
    localStorage.removeItem('roomcast.name');
    location.search = '';
  });
  document.addEventListener('visibilitychange', () => {
    const conv = activeConv();
    if (!document.hidden && conv) { conv.unread = 0; renderLists(); }
  });
}

// -- rendering ------------------------------------------------------------------------------------------

function renderLists() {
  for (const [listId, kind] of [['room-list', 'room'], ['dm-list', 'dm']]) {
    const list = $(listId);
    list.replaceChildren(...[...app.convs.values()].filter((c) => c.kind === kind).map((conv) => el('li', {
      class: `conv${conv.key === app.active ? ' active' : ''}${kind === 'room' && !conv.joined ? ' pending' : ''}`,
      dataset: { conv: conv.key },
    }, el('button', { type: 'button', onclick: () => activate(conv.key) },
      el('span', { class: 'conv-name' }, kind === 'room' ? conv.name : `@${conv.name}`),
      conv.unread ? el('span', { class: 'badge' }, String(conv.unread)) : null))));
  }
  const unread = [...app.convs.values()].reduce((n, c) => n + c.unread, 0);
  document.title = `${unread ? `(${unread}) ` : ''}roomcast chat`;
}

function renderHeader() {
  const conv = activeConv();
  $('conv-title').textContent = conv ? (conv.kind === 'room' ? conv.name : `@${conv.name}`) : 'No conversation';
  let sub = '';
  if (conv?.kind === 'room') {
    const info = app.client?.roomInfo(conv.name);
    const who = conv.members ? `${conv.members.size} here` : 'presence unknown';
    sub = info?.joined ? `${who} · seq ${info.seq}` : 'joining…';
  } else if (conv) {
    sub = 'private conversation';
  }
  $('conv-sub').textContent = sub;
  $('leave-btn').textContent = conv?.kind === 'dm' ? 'Close' : 'Leave';
  $('leave-btn').hidden = !conv;
}

function renderMembers() {
  const conv = activeConv();
  const list = $('member-list');
  const members = conv?.members ? [...conv.members].sort((a, b) => (a === app.me ? -1 : b === app.me ? 1 : a.localeCompare(b))) : [];
  list.replaceChildren(...members.map((user) => {
    const avatar = el('span', { class: 'avatar small', 'aria-hidden': 'true' });
    paintAvatar(avatar, user);
    return el('li', { dataset: { user } }, el('button', {
      type: 'button', disabled: user === app.me, title: user === app.me ? 'you' : `Message ${user} privately`,
      onclick: () => activate(ensureConv('dm', user).key),
    }, avatar, el('span', { class: 'member-name' }, user), user === app.me ? el('span', { class: 'you' }, 'you') : null));
  }));
  $('member-count').textContent = conv?.members ? String(conv.members.size) : '';
  $('presence-hint').hidden = !(conv?.kind === 'room' && conv.joined && !conv.members);
}

/** @param {string} state */
function showState(state) {
  const pill = $('conn-state');
  pill.dataset.state = state;
  document.body.dataset.conn = state;
  const banner = $('banner');
  if (state === 'open') {
    clearInterval(app.countdown);
    pill.textContent = `connected · ${app.client?.node ?? ''}`;
    banner.hidden = true;
  } else if (state === 'connecting') {
    pill.textContent = 'connecting…';
  } else if (state === 'reconnecting') {
    pill.textContent = 'reconnecting…';
    banner.hidden = false;
    banner.textContent = 'Connection lost. Reconnecting… messages you send now are queued.';
  } else if (state === 'closed') {
    clearInterval(app.countdown);
    pill.textContent = 'disconnected';
    banner.hidden = false;
    banner.textContent = 'Disconnected.';
  }
  showFacts();
  renderHeader();
}

/** @param {number} delay @param {number} attempt @param {string} url */
function startCountdown(delay, attempt, url) {
  clearInterval(app.countdown);
  const until = Date.now() + delay;
  const tick = () => {
    const left = Math.max(0, until - Date.now());
    $('banner').textContent = left > 0
      ? `Connection lost. Retrying in ${(left / 1000).toFixed(1)} s (attempt ${attempt}, ${shortUrl(url)}). Messages you send now are queued.`
      : `Connecting to ${shortUrl(url)}… (attempt ${attempt})`;
    if (left === 0) clearInterval(app.countdown);
  };
  tick();
  app.countdown = setInterval(tick, 100);
}

function showFacts() {
  $('conn-node').textContent = app.client?.node ?? '–';
  $('conn-url').textContent = app.client ? shortUrl(app.client.url) : '–';
  $('conn-url').title = app.client?.url ?? '';
  $('conn-reconnects').textContent = String(app.reconnects);
}

/** @param {string} text @param {string} [kind] */
function log(text, kind = '') {
  const list = $('conn-log');
  list.prepend(el('li', { class: kind }, el('time', {}, formatTime(Date.now(), true)), ' ', text));
  while (list.childElementCount > 40) list.lastElementChild?.remove();
}

// -- small helpers ------------------------------------------------------------------------------------------

/** @param {any} data */
function textOf(data) {
  if (typeof data === 'string') return data;
  if (data && typeof data.text === 'string') return data.text;
  return JSON.stringify(data);
}

/** @param {number} at @param {boolean} [seconds] */
function formatTime(at, seconds = false) {
  return new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', ...(seconds ? { second: '2-digit' } : {}) });
}

/** @param {string} url */
function shortUrl(url) {
  try {
    const u = new URL(url);
    return `${u.host}${u.pathname}`;
  } catch {
    return url;
  }
}

/** A stable colour and the initial of a name. @param {HTMLElement} node @param {string} name */
function paintAvatar(node, name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.codePointAt(0)) % 360;
  node.style.setProperty('--hue', String(h));
  node.textContent = (name.replace(/^[^A-Za-z0-9]+/, '')[0] || '?').toUpperCase();
  node.title = name;
}

initLogin();
