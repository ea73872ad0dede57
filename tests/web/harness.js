// Helpers of the web tests: real roomcastd processes on 127.0.0.1, clusters,
// the server's placement function as an oracle, bounded waits.
//
// The server binary comes from ROOMCASTD (CTest sets it) or `--roomcastd PATH`
// on the command line. Every wait has a deadline; every process this file
// starts is stopped by its own PID (SIGTERM, then SIGKILL), also when the
// test process exits early.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import process from 'node:process';

export const HOST = '127.0.0.1';
const LISTEN_RE = /node (\S+) listening on 127\.0\.0\.1:(\d+)/;

/** The server binary: `--roomcastd PATH` or ROOMCASTD. */
export function serverBinary(envName = 'ROOMCASTD', flag = '--roomcastd') {
  const i = process.argv.indexOf(flag);
  const path = i >= 0 ? process.argv[i + 1] : process.env[envName];
  if (!path) throw new Error(`give the server binary with ${flag} PATH or ${envName}=PATH`);
  return path;
}

/** Every process started here, so none outlives the test run. */
const children = new Set();
process.on('exit', () => {
  for (const child of children) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

/** Resolves after `ms`. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `fn` until it returns a truthy value (returned) or `timeout` ms pass
 * (throws, naming `what`).
 */
export async function until(fn, { timeout = 5000, interval = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
    await sleep(interval);
  }
}

/** Rejects when `promise` does not settle within `ms`. */
export function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms); }),
  ]);
}

/** A free TCP port on 127.0.0.1 (for cluster ports, which cannot be 0 in seeds). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * One HTTP request with the path sent exactly as given (no URL
 * normalisation, unlike fetch). Resolves with {status, headers, body}.
 */
export function httpRequest(port, method, path, { body, headers = {}, timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port, method, path, headers, timeout }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
    req.on('error', reject);
    if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
    req.end();
  });
}

// -- one server process ---------------------------------------------------------------

/** One roomcastd (or example) process started by a test, stopped by its PID only. */
export class Server {
  /**
   * @param {string[]} args extra command-line options
   * @param {{binary?: string, name?: string, port?: number}} [opts] `port`:
   *   a fixed HTTP port (to restart a node where its clients expect it)
   */
  constructor(args = [], { binary = serverBinary(), name = 'web-node', port = 0 } = {}) {
    this.binary = binary;
    this.name = name;
    this.fixedPort = port;
    this.extra = args.map(String);
    this.proc = null;
    this.port = null;
    this.lines = [];
  }

  get url() { return `http://${HOST}:${this.port}`; }
  get wsUrl() { return `ws://${HOST}:${this.port}/ws`; }
  get alive() { return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null; }

  /** Starts the process; resolves once it logged its port and /healthz is 200. */
  async start(timeout = 15000) {
    const args = ['--http-port', String(this.fixedPort), '--bind', HOST, '--node-name', this.name, ...this.extra];
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ROOMCAST_')));
    const proc = spawn(this.binary, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    children.add(proc);
    proc.on('exit', () => children.delete(proc));
    this.lines = [];
    this.port = null;
    const portFound = new Promise((resolve, reject) => {
      let buffered = '';
      const onData = (chunk) => {
        buffered += chunk.toString();
        let nl;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          this.lines.push(line);
          const m = LISTEN_RE.exec(line);
          if (m && this.port === null) {
            this.port = Number(m[2]);
            resolve();
          }
        }
      };
      proc.stdout.on('data', onData);
      proc.stderr.on('data', onData);
      proc.on('error', reject);
      proc.on('exit', (code, signal) => reject(new Error(`${this.binary} exited (${code ?? signal}) before listening:\n${this.log()}`)));
    });
    await within(portFound, timeout, `${this.name} to log its port:\n${this.log()}`);
    await until(async () => (await httpRequest(this.port, 'GET', '/healthz', { timeout: 1000 })).status === 200,
      { timeout, what: `${this.name} /healthz` });
    return this;
  }

  log() { return this.lines.join('\n'); }

  /** Sends a signal to our own child, by PID. */
  signal(sig) {
    if (this.alive) process.kill(this.proc.pid, sig);
  }

  /** SIGSTOP, and wait until every thread is stopped (the signal is asynchronous). */
  async freeze() {
    this.signal('SIGSTOP');
    await until(() => {
      const tasks = fs.readdirSync(`/proc/${this.proc.pid}/task`);
      return tasks.every((t) => {
        const stat = fs.readFileSync(`/proc/${this.proc.pid}/task/${t}/stat`, 'utf8');
        return /^\d+ \(.*\) [Tt] /s.test(stat);
      });
    }, { timeout: 5000, interval: 5, what: `${this.name} to stop` });
  }

  /** SIGCONT after freeze(). */
  thaw() { this.signal('SIGCONT'); }

  /** kill -9 and wait for the exit. */
  async kill() {
    if (!this.alive) return;
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    this.signal('SIGKILL');
    await within(exited, 5000, `${this.name} to die`);
  }

  /** SIGTERM (graceful stop), SIGKILL after `timeout`. */
  async stop(timeout = 15000) {
    if (!this.alive) return;
    if (this.proc.signalCode === null) {
      try { process.kill(this.proc.pid, 'SIGCONT'); } catch { /* ignore */ }
    }
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    this.signal('SIGTERM');
    try {
      await within(exited, timeout, `${this.name} to stop`);
    } catch {
      await this.kill();
    }
  }

  /** GET/POST a JSON endpoint; resolves with {status, json}. */
  async json(method, path, body) {
    const res = await httpRequest(this.port, method, path, { body });
    return { status: res.status, json: JSON.parse(res.body.toString() || 'null') };
  }

  /** The value of an unlabelled Prometheus metric (or null). */
  async metric(name) {
    const res = await httpRequest(this.port, 'GET', '/metrics');
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(res.body.toString());
    return m ? Number(m[1]) : null;
  }
}

// -- clusters ---------------------------------------------------------------------------

/** N nodes n1..nN that know each other through their cluster ports. */
export class Cluster {
  constructor(n, { binary = serverBinary(), extra = [] } = {}) {
    this.n = n;
    this.binary = binary;
    this.extra = extra;
    this.nodes = [];
  }

  async start() {
    const ports = [];
    for (let i = 0; i < this.n; i++) ports.push(await freePort());
    const seeds = ports.map((p) => `${HOST}:${p}`).join(',');
    this.nodes = ports.map((p, i) => new Server(
      ['--cluster-port', p, '--seeds', seeds, '--failure-timeout', '2s', ...this.extra],
      { binary: this.binary, name: `n${i + 1}` }));
    await Promise.all(this.nodes.map((node) => node.start()));
    await this.waitMembers(this.n);
    return this;
  }

  live() { return this.nodes.filter((n) => n.alive); }

  /** Waits until every live node sees `count` members and is ready. */
  async waitMembers(count, timeout = 15000) {
    await until(async () => {
      for (const node of this.live()) {
        const { json } = await node.json('GET', '/api/cluster');
        if (json.members.length !== count) return false;
        if ((await httpRequest(node.port, 'GET', '/readyz')).status !== 200) return false;
      }
      return true;
    }, { timeout, interval: 100, what: `${count} cluster members` });
  }

  async stop() {
    await Promise.all(this.nodes.map((n) => n.stop()));
  }
}

// -- placement oracle ---------------------------------------------------------------------

const MASK = (1n << 64n) - 1n;

/** The server's rendezvous score (cluster/placement.cpp). */
function placementScore(name, member) {
  let h = 0xcbf29ce484222325n;
  for (const c of Buffer.from(member)) h = ((h ^ BigInt(c)) * 0x100000001b3n) & MASK;
  h ^= 0xffn;
  for (const c of Buffer.from(name)) h = ((h ^ BigInt(c)) * 0x100000001b3n) & MASK;
  let z = (h + 0x9e3779b97f4a7c15n) & MASK;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
  return z ^ (z >> 31n);
}

/** The node that owns `name` among `members` (node names). */
export function ownerOf(name, members) {
  let best = null;
  let bestScore = -1n;
  for (const m of [...members].sort()) {
    const s = placementScore(name, m);
    if (s > bestScore) { best = m; bestScore = s; }
  }
  return best;
}

/** A room name with `prefix` that `owner` owns among `members`. */
export function roomOwnedBy(owner, members, prefix = 'room') {
  for (let i = 0; i < 10000; i++) {
    const name = `${prefix}-${i}`;
    if (ownerOf(name, members) === owner) return name;
  }
  throw new Error('no such room name');
}

// -- a TCP proxy (to drop a client's connection without touching the server) ----------------

/**
 * Forwards 127.0.0.1:<proxy.port> to `targetPort`. dropAll() cuts every
 * connection (the client sees its socket close; the server sees a peer that
 * went away).
 */
export async function tcpProxy(targetPort) {
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, HOST);
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const done = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream); };
    client.on('error', done);
    upstream.on('error', done);
    client.on('close', done);
    upstream.on('close', done);
  });
  await new Promise((resolve) => server.listen(0, HOST, resolve));
  return {
    port: server.address().port,
    dropAll() { for (const s of sockets) s.destroy(); },
    close() { this.dropAll(); return new Promise((resolve) => server.close(resolve)); },
  };
}
