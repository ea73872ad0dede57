// Tests of web/roomcast.js against real roomcastd processes (and, for the
// seq bookkeeping that needs exact frame orders, against a scripted socket).
// Run: ROOMCASTD=build/roomcastd node --test client.test.js

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

import { RoomcastClient, RoomcastError } from '../../web/roomcast.js';
import {
  Cluster, Server, freePort, ownerOf, roomOwnedBy, sleep, tcpProxy, until, within,
} from './harness.js';

/** Clients made by a test, closed after it. */
let clients = [];

/** A client with fast, bounded reconnects (tests wait for them). */
function client(url, options = {}) {
  const c = new RoomcastClient(url, {
    WebSocket,
    ...options,
    backoff: { initial: 50, max: 500, ...(options.backoff ?? {}) },
  });
  clients.push(c);
  return c;
}

/** Records the details of `types` events of `c`, in order. */
function record(c, ...types) {
  const events = [];
  for (const type of types) c.on(type, (detail) => events.push({ type, detail }));
  return events;
}

/** Resolves with the next `type` event matching `filter`, or fails after `ms`. */
function next(c, type, filter = () => true, ms = 5000) {
  return within(c.once(type, filter), ms, `${type} event`);
}

afterEach(() => {
  for (const c of clients) c.close();
  clients = [];
});

// -- one node ----------------------------------------------------------------------------

describe('requests and events against one node', () => {
  let server;
  before(async () => { server = await new Server([], { name: 'w1' }).start(); });
  after(async () => { await server?.stop(); });

  it('connect resolves with the welcome frame after open, and the state becomes open', async () => {
    const c = client(server.wsUrl, { user: 'alice' });
    const events = record(c, 'state', 'open', 'welcome');
    const welcome = await within(c.connect(), 5000, 'connect');
    assert.deepEqual(welcome, { type: 'welcome', user: 'alice', node: 'w1' });
    assert.equal(c.state, 'open');
    assert.equal(c.user, 'alice');
    assert.equal(c.node, 'w1');
    assert.deepEqual(events.map((e) => e.type === 'state' ? `state:${e.detail.state}` : e.type),
      ['state:connecting', 'open', 'state:open', 'welcome']);
    // connect() again is a no-op that resolves with the same welcome.
    assert.deepEqual(await c.connect(), welcome);
  });

  it('join, publish and leave resolve with the frames that answer them', async () => {
    const c = client(server.wsUrl, { user: 'jpl' });
    await c.connect();
    const joined = await c.join('t:jpl');
    assert.equal(joined.type, 'joined');
    assert.equal(joined.room, 't:jpl');
    assert.equal(joined.seq, 0);
    assert.equal(typeof joined.epoch, 'string');
    assert.deepEqual(c.rooms, ['t:jpl']);
    assert.deepEqual(c.roomInfo('t:jpl'), { seq: 0, epoch: joined.epoch, joined: true });
    const ack1 = await c.publish('t:jpl', { text: 'one' });
    const ack2 = await c.publish('t:jpl', 'two');
    assert.equal(ack1.type, 'ack');
    assert.deepEqual([ack1.seq, ack2.seq], [1, 2]);
    assert.notEqual(ack1.id, ack2.id);
    const left = await c.leave('t:jpl');
    assert.deepEqual({ type: left.type, room: left.room }, { type: 'left', room: 't:jpl' });
    assert.deepEqual(c.rooms, []);
  });

  it('a publish reaches the other members as a message event, and the sender only with echo', async () => {
    const a = client(server.wsUrl, { user: 'pa' });
    const b = client(server.wsUrl, { user: 'pb' });
    await Promise.all([a.connect(), b.connect()]);
    await a.join('t:fan');
    await b.join('t:fan');
    const aMessages = record(a, 'message');
    const got = next(b, 'message');
    const ack = await a.publish('t:fan', { text: 'hi', n: [1, 2] });
    const msg = await got;
    assert.deepEqual(msg, { type: 'message', room: 't:fan', from: 'pa', seq: ack.seq, data: { text: 'hi', n: [1, 2] } });
    const echoed = next(a, 'message');
    const ack2 = await a.publish('t:fan', null, { echo: true });
    assert.equal((await echoed).seq, ack2.seq);
    assert.equal((await echoed).data, null);
    assert.deepEqual(aMessages.map((e) => e.detail.seq), [ack2.seq], 'without echo the sender got its message');
  });

  it('an error frame rejects the request with its id and leaves the other requests alone', async () => {
    const c = client(server.wsUrl, { user: 'errs' });
    await c.connect();
    await c.join('t:errs');
    const errors = record(c, 'error');
    const results = await Promise.allSettled([
      c.publish('t:errs', 1),
      c.publish('t:not-joined', 2),
      c.publish('t:errs', 3),
      c.request({ type: 'frobnicate' }),
      c.leave('t:not-joined-either'),
      c.publish('t:errs', 4),
    ]);
    assert.deepEqual(results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'rejected', 'fulfilled']);
    assert.deepEqual([results[0], results[2], results[5]].map((r) => r.value.seq), [1, 2, 3]);
    const [notMember, unknown, leaveErr] = [results[1].reason, results[3].reason, results[4].reason];
    for (const err of [notMember, unknown, leaveErr]) {
      assert.ok(err instanceof RoomcastError);
      assert.equal(err.frame.type, 'error');
      assert.equal(err.id, err.request.id, 'the error carries the id of its own request');
    }
    assert.equal(notMember.code, 'not_member');
    assert.equal(notMember.room, 't:not-joined');
    assert.equal(unknown.code, 'unknown_type');
    assert.equal(leaveErr.code, 'not_member');
    assert.equal(errors.length, 0, 'answered errors are not also error events');
    // Names are checked before anything is sent.
    await assert.rejects(c.join('no spaces'), { name: 'RoomcastError', code: 'bad_name' });
  });

  it('send and broadcast resolve with ack and fire private and broadcast events', async () => {
    const a = client(server.wsUrl, { user: 'sa' });
    const b = client(server.wsUrl, { user: 'sb' });
    await Promise.all([a.connect(), b.connect()]);
    const priv = next(b, 'private');
    assert.equal((await a.send('sb', { text: 'psst' })).type, 'ack');
    const { id, ...rest } = await priv;
    assert.deepEqual(rest, { type: 'private', from: 'sa', data: { text: 'psst' } });
    assert.match(id, /^[0-9a-z]{10}-1$/, 'the server gives every private message an id');
    const bcA = next(a, 'broadcast');
    const bcB = next(b, 'broadcast');
    assert.equal((await b.broadcast('all hands')).type, 'ack');
    for (const bc of [await bcA, await bcB]) assert.deepEqual(bc, { type: 'broadcast', from: 'sb', data: 'all hands' });
  });

  it('requests made before the connection wait for it and are sent behind the welcome', async () => {
    const a = client(server.wsUrl, { user: 'early' });
    const b = client(server.wsUrl, { user: 'early-b' });
    await b.connect();
    await b.join('t:early');
    const got = next(b, 'message');
    const joined = a.join('t:early');
    const acked = a.publish('t:early', 'queued');
    assert.equal(a.state, 'idle');
    await a.connect();
    assert.equal((await joined).type, 'joined');
    assert.equal((await acked).type, 'ack');
    assert.equal((await got).data, 'queued');
  });

  it('frames a room logic adds are events of their own type, and every frame is a frame event', async () => {
    const c = client(server.wsUrl, { user: 'frames' });
    const frames = record(c, 'frame');
    const pongs = record(c, 'pong');
    await c.connect();
    await c.join('t:frames');
    assert.deepEqual(frames.map((e) => e.detail.type), ['welcome', 'joined']);
    assert.equal(pongs.length, 0);
  });
});

// -- connection loss ------------------------------------------------------------------------

describe('connection loss and reconnect', () => {
  it('a request in flight when the socket closes is rejected with code disconnected', async () => {
    const server = await new Server([], { name: 'w-inflight' }).start();
    try {
      const c = client(server.wsUrl, { user: 'inflight' });
      await c.connect();
      await c.join('t:inflight');
      await server.freeze(); // the request is sent but never answered
      const pending = c.publish('t:inflight', 'lost?');
      const rejected = assert.rejects(within(pending, 5000, 'rejection'), (err) => {
        assert.ok(err instanceof RoomcastError);
        assert.equal(err.code, 'disconnected');
        assert.match(err.message, /closed .*before the answer/);
        assert.equal(err.request.type, 'publish');
        return true;
      });
      await sleep(100);
      await server.kill();
      await rejected;
      assert.equal(c.state, 'reconnecting');
    } finally {
      await server.kill();
    }
  });

  it('a full node closes with 1013 before the welcome: a failed attempt, and the next URL is tried', async () => {
    const full = await new Server(['--max-connections', '1'], { name: 'w-full' }).start();
    const spare = await new Server([], { name: 'w-spare' }).start();
    const occupant = new WebSocket(`${full.wsUrl}?user=occupant`);
    try {
      await within(new Promise((resolve, reject) => {
        occupant.once('message', resolve);
        occupant.once('error', reject);
      }), 5000, 'the occupant\'s welcome');
      const c = client([full.wsUrl, spare.wsUrl], { user: 'late' });
      const events = record(c, 'close', 'reconnecting');
      const welcome = await within(c.connect(), 5000, 'connect');
      assert.equal(welcome.node, 'w-spare');
      const close = events.find((e) => e.type === 'close');
      assert.ok(close, 'a close event for the full node');
      assert.equal(close.detail.code, 1013);
      assert.equal(close.detail.reason, 'node_full');
      assert.equal(close.detail.willReconnect, true);
      assert.equal(events.filter((e) => e.type === 'reconnecting').length, 1);
    } finally {
      occupant.terminate();
      await full.stop();
      await spare.stop();
    }
  });

  it('after the server restarts it reconnects with growing jittered delays, rejoins and reports the new epoch as a gap', async () => {
    const first = await new Server([], { name: 'w-restart' }).start();
    const port = first.port;
    let second;
    try {
      const c = client(first.wsUrl, { user: 'phoenix', backoff: { initial: 100, max: 800 } });
      const events = record(c, 'close', 'reconnecting', 'welcome', 'gap', 'joined');
      await c.connect();
      const joined = await c.join('t:phoenix');
      await c.publish('t:phoenix', 'before');
      await first.stop(); // graceful: the server says 1001 going away
      await until(() => events.filter((e) => e.type === 'reconnecting').length >= 4,
        { timeout: 5000, what: 'four reconnect attempts' });
      second = await new Server([], { name: 'w-restart', port }).start();
      await until(() => c.state === 'open' && c.roomInfo('t:phoenix')?.joined,
        { timeout: 5000, what: 'rejoin after restart' });

      const close = events.find((e) => e.type === 'close').detail;
      assert.equal(close.code, 1001);
      assert.equal(close.willReconnect, true);
      // Delays: within [d/2, d] of d = min(max, initial * 2^n), so they grow
      // until the bound (equal jitter keeps consecutive ranges apart).
      const delays = events.filter((e) => e.type === 'reconnecting').map((e) => e.detail.delay);
      delays.forEach((d, n) => {
        const base = Math.min(800, 100 * 2 ** n);
        assert.ok(d >= base / 2 && d <= base, `delay ${n} = ${d} outside [${base / 2}, ${base}]`);
      });
      for (let i = 1; i < delays.length; i++) assert.ok(delays[i] >= delays[i - 1] || delays[i - 1] > 400);

      const gap = events.find((e) => e.type === 'gap');
      assert.ok(gap, 'a gap event after the restart');
      assert.equal(gap.detail.reason, 'epoch');
      assert.equal(gap.detail.room, 't:phoenix');
      assert.equal(gap.detail.previousEpoch, joined.epoch);
      assert.notEqual(gap.detail.epoch, joined.epoch);
      assert.equal(gap.detail.missed, null);
      assert.deepEqual(c.rooms, ['t:phoenix']);

      // The rejoined room works: another client's message arrives.
      const other = client(second.wsUrl, { user: 'phoenix-2' });
      await other.connect();
      await other.join('t:phoenix');
      const got = next(c, 'message');
      await other.publish('t:phoenix', 'after');
      assert.equal((await got).data, 'after');
      assert.equal(events.filter((e) => e.type === 'gap').length, 1);
    } finally {
      await first.kill();
      await second?.stop();
    }
  });

  it('a dropped connection rejoins the same epoch and reports the messages it missed as a seq gap', async () => {
    const server = await new Server([], { name: 'w-gap' }).start();
    const proxy = await tcpProxy(server.port);
    try {
      const a = client(`ws://127.0.0.1:${proxy.port}/ws`, { user: 'gap-a', backoff: { initial: 600, max: 600 } });
      const b = client(server.wsUrl, { user: 'gap-b' });
      const events = record(a, 'close', 'welcome', 'gap');
      await Promise.all([a.connect(), b.connect()]);
      const joined = await a.join('t:gap');
      await b.join('t:gap');
      const first = next(a, 'message');
      await b.publish('t:gap', 'm1');
      assert.equal((await first).seq, 1);

      proxy.dropAll();
      await next(a, 'close');
      await b.publish('t:gap', 'm2'); // a is away: both are missed
      await b.publish('t:gap', 'm3');
      const gap = await next(a, 'gap', () => true, 5000);
      assert.deepEqual(gap, { room: 't:gap', reason: 'seq', missed: 2, from: 2, to: 3, epoch: joined.epoch, seq: 3 });
      assert.equal(events.filter((e) => e.type === 'welcome').length, 2);

      const m4 = next(a, 'message');
      await b.publish('t:gap', 'm4');
      assert.equal((await m4).seq, 4);
      await sleep(50);
      assert.equal(events.filter((e) => e.type === 'gap').length, 1, 'no gap for contiguous messages');
    } finally {
      await proxy.close();
      await server.stop();
    }
  });

  it('close() stops reconnecting and rejects what waits for a connection', async () => {
    const port = await freePort(); // nothing listens there
    const c = client(`ws://127.0.0.1:${port}/ws`, { user: 'closer', backoff: { initial: 20, max: 40 } });
    const reconnecting = record(c, 'reconnecting');
    const connecting = c.connect();
    const queued = c.publish('t:x', 'never');
    await until(() => reconnecting.length >= 3, { what: 'reconnect attempts' });
    c.close();
    await assert.rejects(connecting, { code: 'closed' });
    await assert.rejects(queued, { code: 'closed' });
    assert.equal(c.state, 'closed');
    const seen = reconnecting.length;
    await sleep(200);
    assert.equal(reconnecting.length, seen, 'no attempt after close()');
    await assert.rejects(c.publish('t:x', 'after close'), { code: 'closed' });
  });

  it('gives up after backoff.maxAttempts consecutive failed attempts', async () => {
    const port = await freePort();
    const c = client(`ws://127.0.0.1:${port}/ws`, { user: 'quitter', backoff: { initial: 10, max: 20, maxAttempts: 3 } });
    const events = record(c, 'close', 'reconnecting');
    await assert.rejects(within(c.connect(), 5000, 'giving up'), { code: 'closed' });
    assert.equal(c.state, 'closed');
    assert.equal(events.filter((e) => e.type === 'close').length, 3);
    assert.equal(events.filter((e) => e.type === 'reconnecting').length, 2);
    assert.equal(events.at(-1).detail.final, true);
  });

  it('a request that gets no answer is rejected with code timeout', async () => {
    const server = await new Server([], { name: 'w-timeout' }).start();
    try {
      const c = client(server.wsUrl, { user: 'slow', pingInterval: 0 });
      await c.connect();
      await server.freeze();
      await assert.rejects(c.broadcast('x', { timeout: 200 }), { code: 'timeout' });
    } finally {
      await server.kill();
    }
  });

  it('a connection that answers nothing is replaced after pingInterval + pongTimeout', async () => {
    const server = await new Server([], { name: 'w-ping' }).start();
    try {
      const c = client(server.wsUrl, { user: 'pinger', pingInterval: 200, pongTimeout: 200 });
      await c.connect();
      const pong = next(c, 'pong', () => true, 2000);
      await pong; // an idle connection is pinged and answers
      await server.freeze();
      const close = await next(c, 'close', () => true, 3000);
      assert.equal(close.code, 4000);
      assert.match(close.reason, /no pong/);
      server.thaw();
      await until(() => c.state === 'open', { timeout: 5000, what: 'reconnect after the node thawed' });
    } finally {
      await server.stop();
    }
  });
});

describe('backoff', () => {
  it('nextDelay is min(max, initial * factor^n) minus up to jitter of it, and random', () => {
    const c = client('ws://127.0.0.1:9/ws', { backoff: { initial: 100, max: 3000, factor: 3, jitter: 0.4 } });
    for (let n = 0; n < 8; n++) {
      const base = Math.min(3000, 100 * 3 ** n);
      const samples = Array.from({ length: 200 }, () => c.nextDelay(n));
      assert.ok(samples.every((d) => d >= Math.floor(base * 0.6) && d <= base), `n=${n}: ${Math.min(...samples)}..${Math.max(...samples)}`);
      assert.ok(new Set(samples).size > 10, 'the delays are jittered');
    }
  });
});

// -- cluster ---------------------------------------------------------------------------------

describe('a two-node cluster', () => {
  let cluster;
  before(async () => { cluster = await new Cluster(2).start(); });
  after(async () => { await cluster?.stop(); });

  it('kill -9 of a room\'s owner: members on the survivor get a gap with the new epoch, the others fail over, and the room works again', async () => {
    const [n1, n2] = cluster.nodes;
    const room = roomOwnedBy('n2', ['n1', 'n2'], 'chat:web');
    assert.equal(ownerOf(room, ['n1']), 'n1');
    const a = client(n1.wsUrl, { user: 'survivor' });
    const b = client([n2.wsUrl, n1.wsUrl], { user: 'migrant' });
    const aEvents = record(a, 'gap', 'joined', 'close');
    const bEvents = record(b, 'gap', 'close', 'welcome');
    await Promise.all([a.connect(), b.connect()]);
    assert.equal(a.node, 'n1');
    assert.equal(b.node, 'n2');
    const joined = await a.join(room);
    await b.join(room);
    assert.equal(await n2.metric('roomcast_rooms'), 1, 'n2 owns the room');
    const hello = next(b, 'message');
    await a.publish(room, 'hello across nodes');
    assert.equal((await hello).from, 'survivor');

    await n2.kill();
    const gap = await next(a, 'gap', () => true, 8000);
    assert.equal(gap.reason, 'epoch');
    assert.equal(gap.room, room);
    assert.equal(gap.previousEpoch, joined.epoch);
    assert.notEqual(gap.epoch, joined.epoch);
    assert.equal(aEvents.filter((e) => e.type === 'close').length, 0, 'a stayed connected');
    assert.ok(aEvents.some((e) => e.type === 'joined' && e.detail.id === undefined), 'the server sent a fresh joined');

    // b's node is gone: it moves to the next URL, rejoins and sees the new epoch too.
    await until(() => b.state === 'open' && b.node === 'n1' && b.roomInfo(room)?.joined,
      { timeout: 8000, what: 'b to fail over to n1' });
    assert.equal(b.url, n1.wsUrl);
    const bGap = bEvents.find((e) => e.type === 'gap');
    assert.ok(bGap, 'b got a gap');
    assert.equal(bGap.detail.reason, 'epoch');
    assert.equal(bGap.detail.epoch, gap.epoch);

    // Publishing works again (retrying while the room is re-created).
    const got = next(b, 'message', (m) => m.data === 'after the crash');
    await until(async () => {
      try { return await a.publish(room, 'after the crash'); } catch (err) {
        if (err.code === 'unavailable') return false;
        throw err;
      }
    }, { timeout: 8000, what: 'a publish after the crash' });
    assert.equal((await got).seq, 1);
  });
});

// -- frame bookkeeping with a scripted socket --------------------------------------------------

/** A WebSocket stand-in whose "server" side the test scripts. */
class ScriptedSocket {
  static last = null;
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    ScriptedSocket.last = this;
  }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code = 1000, reason = '') {
    if (this.readyState === 3) return;
    this.readyState = 3;
    queueMicrotask(() => this.onclose?.({ code, reason, wasClean: true }));
  }
  // -- the scripted server --
  accept(user = 'u', node = 'fake') {
    this.readyState = 1;
    this.onopen?.({});
    this.push({ type: 'welcome', user, node });
  }
  push(frame) { this.onmessage?.({ data: JSON.stringify(frame) }); }
  lastSent(type) { return this.sent.filter((f) => f.type === type).at(-1); }
}

describe('seq and epoch bookkeeping (scripted socket)', () => {
  async function connected() {
    const c = client('ws://fake.invalid/ws', { WebSocket: ScriptedSocket, user: 'u', pingInterval: 0 });
    const connecting = c.connect();
    const sock = ScriptedSocket.last;
    sock.accept();
    await connecting;
    const joining = c.join('r');
    sock.push({ type: 'joined', room: 'r', seq: 10, epoch: 'e1', id: sock.lastSent('join').id });
    await joining;
    return { c, sock, gaps: record(c, 'gap') };
  }

  it('an own publish acked after later messages is not a gap', async () => {
    const { c, sock, gaps } = await connected();
    const acked = c.publish('r', 'mine');
    const id = sock.lastSent('publish').id;
    sock.push({ type: 'message', room: 'r', from: 'x', seq: 12, data: 1 }); // 11 is ours, ack not yet here
    assert.equal(gaps.length, 0);
    sock.push({ type: 'ack', id, seq: 11 });
    assert.equal((await acked).seq, 11);
    sock.push({ type: 'message', room: 'r', from: 'x', seq: 13, data: 2 });
    assert.equal(gaps.length, 0);
    // An ack that overtakes an earlier message: no gap either.
    const acked2 = c.publish('r', 'mine too');
    sock.push({ type: 'ack', id: sock.lastSent('publish').id, seq: 15 });
    await acked2;
    sock.push({ type: 'message', room: 'r', from: 'x', seq: 14, data: 3 });
    sock.push({ type: 'message', room: 'r', from: 'x', seq: 16, data: 4 });
    assert.equal(gaps.length, 0);
    assert.equal(c.roomInfo('r').seq, 16);
  });

  it('a seq jump is a gap once no publish to the room is unanswered', async () => {
    const { c, sock, gaps } = await connected();
    sock.push({ type: 'message', room: 'r', from: 'x', seq: 13, data: 0 });
    assert.deepEqual(gaps.map((g) => g.detail), [{ room: 'r', reason: 'seq', missed: 2, from: 11, to: 12, epoch: 'e1', seq: 13 }]);
    const pending = c.publish('r', 'mine');
    sock.push({ type: 'message', room: 'r', from: 'x', seq: 16, data: 0 }); // 14, 15: ours?
    assert.equal(gaps.length, 1);
    sock.push({ type: 'ack', id: sock.lastSent('publish').id, seq: 14 });
    await pending;
    assert.deepEqual(gaps[1].detail, { room: 'r', reason: 'seq', missed: 1, from: 15, to: 15, epoch: 'e1', seq: 16 });
  });

  it('a private message delivered again (same id) is one private event; the window of ids is bounded', async () => {
    const { c, sock } = await connected();
    const privates = record(c, 'private');
    const frames = record(c, 'frame');
    const p = { type: 'private', from: 'a', data: 'hi', id: 'n1-7' };
    sock.push(p);
    sock.push({ ...p, data: 'other', id: 'n1-8' });
    sock.push(p); // a stored message written again after a node crash
    assert.deepEqual(privates.map((e) => e.detail.id), ['n1-7', 'n1-8']);
    assert.equal(frames.filter((e) => e.detail.type === 'private').length, 3);
    // The window is bounded: after 1024 newer ids the oldest is forgotten.
    for (let i = 0; i < 1024; i++) sock.push({ ...p, id: `bulk-${i}` });
    sock.push(p);
    assert.equal(privates.length, 2 + 1024 + 1);
    assert.equal(privates.at(-1).detail.id, 'n1-7');
  });

  it('a joined with another epoch is a gap of reason epoch; the same epoch further on is a seq gap', async () => {
    const { sock, gaps } = await connected();
    sock.push({ type: 'joined', room: 'r', seq: 0, epoch: 'e2' });
    assert.deepEqual(gaps.map((g) => g.detail), [{ room: 'r', reason: 'epoch', missed: null, epoch: 'e2', previousEpoch: 'e1', seq: 0 }]);
    sock.push({ type: 'joined', room: 'r', seq: 3, epoch: 'e2' });
    assert.deepEqual(gaps[1].detail, { room: 'r', reason: 'seq', missed: 3, from: 1, to: 3, epoch: 'e2', seq: 3 });
  });

  it('an error frame that answers no request is an error event; reserved types are only frame events', async () => {
    const { c, sock } = await connected();
    const errors = record(c, 'error');
    const frames = record(c, 'frame');
    const presence = record(c, 'presence');
    const closes = record(c, 'close');
    sock.push({ type: 'error', code: 'rate_limited', message: 'slow down' });
    sock.push({ type: 'presence', room: 'r', members: ['u', 'v'] });
    sock.push({ type: 'close', room: 'r' });
    assert.equal(errors.length, 1);
    assert.ok(errors[0].detail instanceof RoomcastError);
    assert.equal(errors[0].detail.code, 'rate_limited');
    assert.deepEqual(presence.map((e) => e.detail.members), [['u', 'v']]);
    assert.equal(closes.length, 0);
    assert.deepEqual(frames.map((e) => e.detail.type), ['error', 'presence', 'close']);
  });

  it('a token function is called before every attempt, and the URLs of the list are tried in turn', async () => {
    let n = 0;
    const c = client(['ws://a.invalid/ws', 'ws://b.invalid/ws?x=1'], {
      WebSocket: ScriptedSocket, token: async () => `t${++n}`, pingInterval: 0, backoff: { initial: 1, max: 1 },
    });
    const urls = [];
    c.connect();
    for (let i = 0; i < 3; i++) {
      await until(() => ScriptedSocket.last && !urls.includes(ScriptedSocket.last), { what: `attempt ${i + 1}` });
      urls.push(ScriptedSocket.last);
      if (i < 2) ScriptedSocket.last.close(1006);
    }
    assert.deepEqual(urls.map((s) => s.url),
      ['ws://a.invalid/ws?token=t1', 'ws://b.invalid/ws?x=1&token=t2', 'ws://a.invalid/ws?token=t3']);
    urls[2].accept('tokened');
    await until(() => c.state === 'open', { what: 'open' });
    assert.equal(c.user, 'tokened');
  });

  it('leave while disconnected resolves at once and the room is not joined again', async () => {
    const { c, sock } = await connected();
    sock.close(1006, 'gone');
    await next(c, 'close');
    assert.deepEqual(await c.leave('r'), { type: 'left', room: 'r' });
    assert.deepEqual(c.rooms, []);
    await until(() => ScriptedSocket.last !== sock, { what: 'a reconnect attempt' });
    ScriptedSocket.last.accept();
    await until(() => c.state === 'open', { what: 'open' });
    assert.equal(ScriptedSocket.last.sent.filter((f) => f.type === 'join').length, 0);
  });
});
