// The demo page in real headless Chromium (Debian's /usr/bin/chromium driven
// by playwright-core): two pages on two nodes of a cluster chat in a `chat:`
// room, see each other's presence, talk privately, and one page survives
// its node, the room's owner, being killed (it fails over to the other node,
// the room restarts there, and both keep talking).
// Screenshots go to $WEB_TEST_ARTIFACTS (CTest: <build>/artifacts/).
//
// The server is the `chat` example (roomcast-chat, which sends presence and
// history) when it exists: WEB_TEST_SERVER=PATH or `--server PATH`, else
// `roomcast-chat` in WEB_TEST_BUILD_DIR (or its examples/), else plain
// ROOMCASTD, with which the presence checks are reported as skipped.
//
// Run: ROOMCASTD=build/roomcastd WEB_TEST_BUILD_DIR=build node --test browser.test.js

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { chromium } from 'playwright-core';

import { Cluster, ownerOf, serverBinary, sleep } from './harness.js';

const CHROMIUM = process.env.WEB_TEST_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const ARTIFACTS = process.env.WEB_TEST_ARTIFACTS
  || path.join(process.env.WEB_TEST_BUILD_DIR || os.tmpdir(), 'artifacts');

/** The server to run and whether it is the chat example (presence, history). */
function pickServer() {
  const flag = process.argv.indexOf('--server');
  const given = flag >= 0 ? process.argv[flag + 1] : process.env.WEB_TEST_SERVER;
  if (given) return { binary: given, chat: path.basename(given).includes('chat') };
  const build = process.env.WEB_TEST_BUILD_DIR;
  if (build) {
    for (const candidate of [path.join(build, 'roomcast-chat'), path.join(build, 'examples', 'roomcast-chat')]) {
      if (fs.existsSync(candidate)) return { binary: candidate, chat: true };
    }
  }
  return { binary: serverBinary(), chat: false };
}

/** Waits until some element matching `selector` has text containing `text` (hidden ones count). */
async function waitForText(page, selector, text, timeout = 8000) {
  try {
    await page.waitForFunction(
      ([sel, t]) => [...document.querySelectorAll(sel)].some((e) => e.textContent.includes(t)),
      [selector, text], { timeout, polling: 50 });
  } catch (err) {
    const seen = await page.$$eval(selector, (els) => els.map((e) => e.textContent.trim()).slice(-10)).catch(() => []);
    throw new Error(`${page.label}: no "${text}" in ${selector} within ${timeout} ms; last: ${JSON.stringify(seen)}\n${err.message}`);
  }
}

/** Waits until the member list of the active room holds every name. */
async function waitForMembers(page, names, timeout = 8000) {
  try {
    await page.waitForFunction(
      (want) => want.every((n) => document.querySelector(`#member-list li[data-user="${n}"]`)),
      names, { timeout, polling: 50 });
  } catch (err) {
    const seen = await page.$$eval('#member-list li', (els) => els.map((e) => e.dataset.user));
    throw new Error(`${page.label}: members ${JSON.stringify(seen)}, expected ${JSON.stringify(names)}\n${err.message}`);
  }
}

/** Types a line into the composer and sends it with Enter. */
async function say(page, text) {
  await page.fill('#composer-input', text);
  await page.press('#composer-input', 'Enter');
}

describe('the demo page in headless Chromium on a two-node cluster', () => {
  let cluster;
  let context;
  let profile;
  let server;
  const pageErrors = [];

  before(async () => {
    if (!fs.existsSync(CHROMIUM))
      throw new Error(`Chromium not found at ${CHROMIUM}: install it with \`scripts/install-deps --test\` `
        + '(Debian package "chromium") or set WEB_TEST_CHROMIUM to its path');
    server = pickServer();
    cluster = await new Cluster(2, { binary: server.binary }).start();
    profile = fs.mkdtempSync(path.join(os.tmpdir(), 'roomcast-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 800 }, timeout: 30000,
    });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
  });

  after(async () => {
    await context?.close();
    await cluster?.stop();
    if (profile) fs.rmSync(profile, { recursive: true, force: true });
  });

  /** Opens the page served by `node`, signed in as `user`, with `ws` as its node list. */
  async function open(node, user, wsUrls) {
    const page = await context.newPage();
    page.label = user;
    page.on('pageerror', (err) => pageErrors.push(`${user}: ${err.message}`));
    page.on('console', (msg) => { if (msg.type() === 'error') pageErrors.push(`${user} console: ${msg.text()}`); });
    const query = new URLSearchParams({ user, rooms: 'chat:lobby', ws: wsUrls.join(',') });
    await page.goto(`${node.url}/?${query}`);
    await page.waitForSelector('#conn-state[data-state="open"]', { timeout: 10000 });
    await page.waitForSelector('#room-list li.conv:not(.pending)[data-conv="room:chat:lobby"]', { timeout: 10000 });
    return page;
  }

  it('two pages on two nodes chat, see presence, talk privately, and one survives its node being killed', async (t) => {
    t.diagnostic(`server: ${server.binary}${server.chat ? ' (chat example: presence and history checked)' : ''}`);
    const [n1, n2] = cluster.nodes;
    const alice = await open(n1, 'alice', [n1.wsUrl, n2.wsUrl]);
    const bob = await open(n2, 'bob', [n2.wsUrl, n1.wsUrl]);
    assert.equal(await alice.textContent('#conn-node'), 'n1');
    assert.equal(await bob.textContent('#conn-node'), 'n2');

    // Talk across nodes.
    await say(alice, 'hello from alice on n1');
    await waitForText(bob, '[data-conv="room:chat:lobby"] .msg[data-from="alice"] .text', 'hello from alice on n1');
    await say(bob, 'hi alice, bob on n2 here');
    await waitForText(alice, '[data-conv="room:chat:lobby"] .msg[data-from="bob"] .text', 'hi alice, bob on n2 here');
    // The sender's own message is marked delivered (acked with a seq).
    await alice.waitForSelector('[data-conv="room:chat:lobby"] .msg.mine:not(.pending)[data-seq]');

    // Presence: who is in the room (from the chat room logic).
    if (server.chat) {
      await waitForMembers(alice, ['alice', 'bob']);
      await waitForMembers(bob, ['alice', 'bob']);
      assert.equal(await alice.textContent('#member-count'), '2');
    } else {
      t.diagnostic('presence not checked: plain roomcastd sends none (build examples/chat.cpp as roomcast-chat)');
      // The page says so after a moment without presence frames.
      await alice.waitForSelector('#presence-hint', { state: 'visible', timeout: 5000 });
    }

    // A private message, typed as a command.
    await say(alice, '/msg bob psst, only you can read this');
    await waitForText(bob, '#dm-list li', '@alice');
    await waitForText(bob, '[data-conv="dm:alice"] .msg[data-from="alice"] .text', 'psst, only you can read this');
    await bob.click('#dm-list li[data-conv="dm:alice"] button');
    await say(bob, 'got it');
    await waitForText(alice, '[data-conv="dm:bob"] .msg[data-from="bob"] .text', 'got it');
    await alice.click('#room-list li[data-conv="room:chat:lobby"] button');
    await bob.click('#room-list li[data-conv="room:chat:lobby"] button');

    // Kill the node that owns chat:lobby (placement is deterministic: n2), so
    // the room restarts on the survivor while its page fails over there too.
    assert.equal(ownerOf('chat:lobby', ['n1', 'n2']), 'n2');
    await n2.kill();
    await bob.waitForFunction(() => document.querySelector('#conn-state')?.dataset.state === 'open'
      && document.querySelector('#conn-node')?.textContent === 'n1', null, { timeout: 15000, polling: 50 });
    assert.equal(await bob.textContent('#conn-reconnects'), '1');
    await bob.waitForSelector('#room-list li.conv:not(.pending)[data-conv="room:chat:lobby"]', { timeout: 10000 });
    await waitForText(bob, '#conn-log li', 'reconnected to n1');
    await waitForText(bob, '#conn-log li', 'lost (1006)');
    // alice's node survived: she stays connected and is told the room restarted.
    await waitForText(alice, '[data-conv="room:chat:lobby"] .sys', 'room restarted', 10000);
    await waitForText(bob, '[data-conv="room:chat:lobby"] .sys', 'room restarted', 10000);
    assert.equal(await alice.textContent('#conn-reconnects'), '0');
    assert.equal(await alice.textContent('#conn-node'), 'n1');

    await say(bob, 'still here after n2 died');
    await waitForText(alice, '[data-conv="room:chat:lobby"] .msg[data-from="bob"] .text', 'still here after n2 died', 10000);
    await say(alice, 'welcome back, bob');
    await waitForText(bob, '[data-conv="room:chat:lobby"] .msg[data-from="alice"] .text', 'welcome back, bob', 10000);
    for (const page of [alice, bob])
      assert.equal(await page.locator('.msg.failed').count(), 0, `${page.label}: no message failed`);
    if (server.chat) {
      await waitForMembers(alice, ['alice', 'bob'], 10000);
      await waitForMembers(bob, ['alice', 'bob'], 10000);
    }

    await sleep(300); // let the last message scroll into view
    await alice.screenshot({ path: path.join(ARTIFACTS, 'web-chat-alice.png') });
    await bob.screenshot({ path: path.join(ARTIFACTS, 'web-chat-bob.png') });
    t.diagnostic(`screenshots: ${path.join(ARTIFACTS, 'web-chat-alice.png')}, ${path.join(ARTIFACTS, 'web-chat-bob.png')}`);
    assert.deepEqual(pageErrors.filter((e) => !/WebSocket connection to .* failed/.test(e)), [], 'no errors in the pages');
  });
});
