'use strict';
// The peer users would pick instead of roomcast: the classic Node design,
// a `ws` server per process and Redis pub/sub between processes (bench/run
// starts two of them on one Redis). It speaks the protocol subset the
// benchmark uses: welcome; join -> joined; publish -> message with seq to
// every other member of the room on every process, ack with id; ping -> pong.
//
// The usual optimisations of that design are in: a room's seq is assigned
// and published in one Lua call (so seq order is publish order across
// processes), each process subscribes to a room's channel only while it has
// members, and a message is turned into one Buffer that every local member
// is sent (ws frames it without copying the payload).
//
// usage: node server.js --port P --redis-port R [--node NAME]

const http = require('http');
const { WebSocketServer } = require('ws');
const Redis = require('ioredis');

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const port = Number(option('port', '8090'));
const redisPort = Number(option('redis-port', '6379'));
const node = option('node', `node-${process.pid}`);

const redisOptions = { host: '127.0.0.1', port: redisPort, enableAutoPipelining: false };
const pub = new Redis(redisOptions);
const sub = new Redis(redisOptions);
pub.defineCommand('roomPublish', {
  numberOfKeys: 1,
  // KEYS[1] seq key; ARGV: channel, frame before the seq, frame after it.
  lua: "local s = redis.call('INCR', KEYS[1]) " +
       "redis.call('PUBLISH', ARGV[1], ARGV[2] .. s .. ARGV[3]) return s",
});

/** room name -> Set of local sockets */
const rooms = new Map();
/** room name -> promise of the SUBSCRIBE of its channel */
const subscribed = new Map();

// A published message is "<origin connection id>|<message frame>": the
// origin is skipped (no echo), everyone else gets the same Buffer.
sub.on('messageBuffer', (channel, message) => {
  const members = rooms.get(channel.toString('latin1', 5));
  if (!members) return;
  const bar = message.indexOf(124);
  const origin = message.toString('latin1', 0, bar);
  const frame = message.subarray(bar + 1);
  for (const ws of members) {
    if (ws.cid !== origin && ws.readyState === 1) ws.send(frame, { binary: false });
  }
});

function reply(ws, obj) {
  if (ws.readyState === 1) ws.send(JSON.stringify(obj));
}

function withId(obj, id) {
  if (id !== undefined) obj.id = id;
  return obj;
}

function error(ws, id, code) {
  reply(ws, withId({ type: 'error', code, message: code }, id));
}

function join(ws, room, id) {
  let members = rooms.get(room);
  if (!members) {
    members = new Set();
    rooms.set(room, members);
    subscribed.set(room, sub.subscribe(`room:${room}`));
  }
  members.add(ws);
  ws.rooms.add(room);
  // Answer once the channel is live, so nothing published after `joined` is missed.
  subscribed.get(room)
    .then(() => pub.get(`seq:${room}`))
    .then((seq) => reply(ws, withId({ type: 'joined', room, seq: Number(seq) || 0, epoch: 'redis' }, id)))
    .catch(() => error(ws, id, 'unavailable'));
}

function leave(ws, room) {
  const members = rooms.get(room);
  if (!members) return;
  members.delete(ws);
  if (members.size === 0) {
    rooms.delete(room);
    subscribed.delete(room);
    sub.unsubscribe(`room:${room}`).catch(() => {});
  }
}

function publish(ws, room, data, id) {
  if (!ws.rooms.has(room)) return error(ws, id, 'not_member');
  const head = `${ws.cid}|{"type":"message","room":${JSON.stringify(room)},"from":${JSON.stringify(ws.user)},"seq":`;
  const tail = `,"data":${JSON.stringify(data)}}`;
  pub.roomPublish(`seq:${room}`, `room:${room}`, head, tail)
    .then((seq) => { if (id !== undefined) reply(ws, { type: 'ack', id, seq }); })
    .catch(() => error(ws, id, 'unavailable'));
}

function handle(ws, raw, isBinary) {
  if (isBinary) return ws.close(1003);
  let msg;
  try {
    msg = JSON.parse(raw);
  } catch (e) {
    return error(ws, undefined, 'bad_json');
  }
  if (msg === null || typeof msg !== 'object') return error(ws, undefined, 'bad_json');
  const { type, room, id } = msg;
  if (type === 'ping') return reply(ws, withId({ type: 'pong' }, id));
  if (type !== 'join' && type !== 'publish') return error(ws, id, 'unknown_type');
  if (typeof room !== 'string') return error(ws, id, 'bad_request');
  if (type === 'join') return join(ws, room, id);
  if (!('data' in msg)) return error(ws, id, 'bad_request');
  return publish(ws, room, msg.data, id);
}

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"status":"ok"}');
  } else {
    res.writeHead(404);
    res.end();
  }
});
const wss = new WebSocketServer({ server, path: '/ws', perMessageDeflate: false, maxPayload: 65536 });
let connections = 0;
wss.on('connection', (ws, req) => {
  const user = new URL(req.url, 'http://localhost').searchParams.get('user');
  ws.cid = `${node}:${++connections}`;
  ws.user = user || `anon-${connections}`;
  ws.rooms = new Set();
  ws.on('message', (raw, isBinary) => handle(ws, raw, isBinary));
  ws.on('close', () => { for (const room of ws.rooms) leave(ws, room); });
  ws.on('error', () => {});
  reply(ws, { type: 'welcome', user: ws.user, node });
});

server.listen(port, '127.0.0.1', () => console.log(`listening on ${port}`));
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    pub.disconnect();
    sub.disconnect();
    process.exit(0);
  });
}
