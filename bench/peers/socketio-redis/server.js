'use strict';
// The second peer: Socket.IO with @socket.io/redis-adapter, the other common
// Node design. Our protocol travels inside Socket.IO events: requests arrive
// as event "r", everything the server sends is event "m" (the load generator
// speaks Engine.IO v4 with --protocol socketio). Rooms are Socket.IO rooms;
// the adapter carries broadcasts between processes. A room's seq comes from
// Redis INCR, whose replies arrive in command order, so one publisher's
// messages are emitted in seq order.
//
// usage: node server.js --port P --redis-port R [--node NAME]

const http = require('http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const Redis = require('ioredis');

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const port = Number(option('port', '8091'));
const redisPort = Number(option('redis-port', '6379'));
const node = option('node', `node-${process.pid}`);

const pubClient = new Redis({ host: '127.0.0.1', port: redisPort });
const subClient = pubClient.duplicate();
const store = pubClient.duplicate(); // seq counters, off the adapter's connection

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"status":"ok"}');
  }
  // Anything else is left to Socket.IO's own request handler.
});
const io = new Server(server, {
  transports: ['websocket'],
  perMessageDeflate: false,
  serveClient: false,
  adapter: createAdapter(pubClient, subClient),
});

function withId(obj, id) {
  if (id !== undefined) obj.id = id;
  return obj;
}

io.on('connection', (socket) => {
  const user = String(socket.handshake.query.user || `anon-${socket.id}`);
  const rooms = new Set();
  const error = (id, code) => socket.emit('m', withId({ type: 'error', code, message: code }, id));
  socket.emit('m', { type: 'welcome', user, node });
  socket.on('r', (msg) => {
    if (msg === null || typeof msg !== 'object') return error(undefined, 'bad_json');
    const { type, room, id } = msg;
    if (type === 'ping') return socket.emit('m', withId({ type: 'pong' }, id));
    if (type !== 'join' && type !== 'publish') return error(id, 'unknown_type');
    if (typeof room !== 'string') return error(id, 'bad_request');
    if (type === 'join') {
      socket.join(room);
      rooms.add(room);
      store.get(`seq:${room}`)
        .then((seq) => socket.emit('m', withId({ type: 'joined', room, seq: Number(seq) || 0, epoch: 'redis' }, id)))
        .catch(() => error(id, 'unavailable'));
      return;
    }
    if (!rooms.has(room)) return error(id, 'not_member');
    if (!('data' in msg)) return error(id, 'bad_request');
    store.incr(`seq:${room}`)
      .then((seq) => {
        io.to(room).except(socket.id).emit('m', { type: 'message', room, from: user, seq, data: msg.data });
        if (id !== undefined) socket.emit('m', { type: 'ack', id, seq });
      })
      .catch(() => error(id, 'unavailable'));
  });
});

server.listen(port, '127.0.0.1', () => console.log(`listening on ${port}`));
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    io.close();
    pubClient.disconnect();
    subClient.disconnect();
    store.disconnect();
    process.exit(0);
  });
}
