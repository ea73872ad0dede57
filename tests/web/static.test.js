// The node serves its web root over HTTP GET: the demo page at `/`,
// roomcast.js and the rest, with the right Content-Type, and nothing outside
// the root. Run: ROOMCASTD=build/roomcastd node --test static.test.js

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';

import { Server, httpRequest } from './harness.js';

/** A web root with one file of each type, a subdirectory, and symlinks in and out. */
function makeWebRoot() {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'roomcast-web-'));
  const root = path.join(base, 'root');
  fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
  fs.mkdirSync(path.join(root, '.hidden'));
  fs.writeFileSync(path.join(root, 'index.html'), '<!doctype html><title>t</title>');
  fs.writeFileSync(path.join(root, 'app.js'), 'export const x = 1;\n');
  fs.writeFileSync(path.join(root, 'style.css'), 'body { margin: 0 }\n');
  fs.writeFileSync(path.join(root, 'logo.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  fs.writeFileSync(path.join(root, 'pixel.png'), Buffer.from('89504e470d0a1a0a', 'hex'));
  fs.writeFileSync(path.join(root, 'data.json'), '{"a":1}');
  fs.writeFileSync(path.join(root, 'sub', 'index.html'), '<p>sub</p>');
  fs.writeFileSync(path.join(root, 'sub', 'page.html'), '<p>page</p>');
  fs.writeFileSync(path.join(root, '.hidden', 'secret.txt'), 'hidden');
  fs.writeFileSync(path.join(root, '.env'), 'SECRET=1');
  fs.writeFileSync(path.join(base, 'outside.txt'), 'outside the root');
  fs.symlinkSync(path.join(base, 'outside.txt'), path.join(root, 'escape.txt'));
  fs.symlinkSync(base, path.join(root, 'escape-dir'));
  fs.symlinkSync(path.join(root, 'app.js'), path.join(root, 'alias.js'));
  return { base, root };
}

describe('static files from --web-root', () => {
  let server;
  let dirs;
  before(async () => {
    dirs = makeWebRoot();
    server = await new Server(['--web-root', dirs.root], { name: 'static' }).start();
  });
  after(async () => {
    await server?.stop();
    fs.rmSync(dirs.base, { recursive: true, force: true });
  });

  const get = (p, method = 'GET') => httpRequest(server.port, method, p);

  it('GET / serves index.html as text/html', async () => {
    const res = await get('/');
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(res.body.toString(), '<!doctype html><title>t</title>');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal((await get('/?user=alice&ws=x')).status, 200, 'a query string is ignored');
  });

  it('each file type gets its Content-Type', async () => {
    const types = {
      '/index.html': 'text/html; charset=utf-8',
      '/app.js': 'text/javascript; charset=utf-8',
      '/style.css': 'text/css; charset=utf-8',
      '/logo.svg': 'image/svg+xml',
      '/pixel.png': 'image/png',
      '/data.json': 'application/json',
      '/sub/page.html': 'text/html; charset=utf-8',
    };
    for (const [p, type] of Object.entries(types)) {
      const res = await get(p);
      assert.equal(res.status, 200, p);
      assert.equal(res.headers['content-type'], type, p);
      assert.equal(Number(res.headers['content-length']), res.body.length, p);
    }
    assert.deepEqual((await get('/pixel.png')).body, Buffer.from('89504e470d0a1a0a', 'hex'));
  });

  it('a directory serves its index.html', async () => {
    for (const p of ['/sub/', '/sub']) {
      const res = await get(p);
      assert.equal(res.status, 200, p);
      assert.equal(res.body.toString(), '<p>sub</p>');
    }
  });

  it('HEAD answers the headers of GET without a body', async () => {
    const res = await get('/app.js', 'HEAD');
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(Number(res.headers['content-length']), 'export const x = 1;\n'.length);
    assert.equal(res.body.length, 0);
  });

  it('a missing file is a 404 with a JSON error', async () => {
    for (const p of ['/nope.html', '/sub/nope', '/nope/']) {
      const res = await get(p);
      assert.equal(res.status, 404, p);
      assert.equal(res.headers['content-type'], 'application/json');
      assert.equal(JSON.parse(res.body.toString()).error.code, 'not_found');
    }
  });

  it('nothing outside the root and no hidden file is served, however the path is spelled', async () => {
    const attempts = [
      '/../outside.txt', '/sub/../../outside.txt', '/%2e%2e/outside.txt', '/%2E%2E%2Foutside.txt',
      '/sub/%2e%2e/%2e%2e/outside.txt', '/..%2foutside.txt', '/escape.txt', '/escape-dir/outside.txt',
      '/.env', '/.hidden/secret.txt', '/%2eenv', '/sub/./page.html', '/index.html%00.png',
      '//etc/passwd', '/%2fetc/passwd', '/..', '/../',
    ];
    for (const p of attempts) {
      const res = await get(p);
      assert.equal(res.status, 404, `${p} -> ${res.status} ${res.body.toString().slice(0, 60)}`);
      assert.ok(!res.body.toString().includes('outside the root'), p);
    }
  });

  it('a symlink that stays inside the root is served', async () => {
    const res = await get('/alias.js');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'export const x = 1;\n');
  });

  it('the other routes still answer: /healthz, /readyz, /metrics, /api/publish, /api/cluster, /ws', async () => {
    assert.equal((await get('/healthz')).status, 200);
    assert.equal((await get('/readyz')).status, 200);
    const metrics = await get('/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers['content-type'], /^text\/plain/);
    assert.equal((await server.json('POST', '/api/publish', { room: 'x', data: 1 })).status, 202);
    assert.equal((await get('/api/publish')).status, 405);
    assert.equal((await get('/api/cluster')).status, 200);
    const ws = new WebSocket(`${server.wsUrl}?user=static`);
    const welcome = await new Promise((resolve, reject) => {
      ws.once('message', (data) => resolve(JSON.parse(data.toString())));
      ws.once('error', reject);
    });
    ws.close();
    assert.equal(welcome.type, 'welcome');
    assert.equal((await get('/ws')).status, 400, '/ws without an upgrade is still refused');
  });

  it('POST to a file path is not served: 405, naming GET and HEAD', async () => {
    const res = await get('/index.html', 'POST');
    assert.equal(res.status, 405);
    assert.equal(res.headers.allow, 'GET, HEAD');
    assert.equal(JSON.parse(res.body.toString()).error.code, 'method_not_allowed');
    assert.equal((await get('/nope.html', 'POST')).status, 404, 'no such file');
  });
});

describe('the default web root', () => {
  it('is the source tree\'s web/ with the demo page and roomcast.js', async () => {
    const server = await new Server([], { name: 'static-default' }).start();
    try {
      const page = await httpRequest(server.port, 'GET', '/');
      assert.equal(page.status, 200);
      assert.match(page.body.toString(), /<script type="module" src="app\.js"><\/script>/);
      const lib = await httpRequest(server.port, 'GET', '/roomcast.js');
      assert.equal(lib.headers['content-type'], 'text/javascript; charset=utf-8');
      assert.equal(lib.body.toString(), fs.readFileSync(new URL('../../web/roomcast.js', import.meta.url), 'utf8'));
    } finally {
      await server.stop();
    }
  });

  it('--web-root "" serves no files', async () => {
    const server = await new Server(['--web-root', ''], { name: 'static-off' }).start();
    try {
      assert.equal((await httpRequest(server.port, 'GET', '/')).status, 404);
      assert.equal((await httpRequest(server.port, 'GET', '/roomcast.js')).status, 404);
    } finally {
      await server.stop();
    }
  });
});
