"""The deployment topology, as `scripts/cluster up` runs it: RabbitMQ, three
roomcastd nodes and a load balancer (nginx, or HAProxy) on 127.0.0.1, with
the configuration docker-compose.yml uses. Clients know only the load
balancer's URL; the tests look at the nodes through it too
(/nodes/NODE/metrics).

Covers: 300 clients spread over the nodes chatting across them without
loss, an AMQP publish (once the RabbitMQ bridge is in the binary), a killed
node whose clients come back through nginx, a rolling restart of every node
under traffic without losing room or private messages, the same smoke test
through HAProxy, and the static deployment files (docker-compose config,
the runtime image's libraries).

The NginxTopology tests run in the order of their numbers on one cluster.
"""

import asyncio
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

import harness
import websockets.exceptions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = os.path.join(ROOT, "scripts", "cluster")
NODES = ("node1", "node2", "node3")
# Traffic from one test process: lift the per-connection rate limit; a 2 s
# failure timeout as in test_cluster.py.
NODE_ARGS = ("--rate-limit", "100000", "--rate-burst", "100000", "--failure-timeout", "2s")
SLACK = 2.0   # seconds after an ack by which every member has the message


def _binary_from_argv():
    """The --roomcastd given to this file (read before harness.main runs, for skipUnless)."""
    for i, arg in enumerate(sys.argv):
        if arg == "--roomcastd" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if arg.startswith("--roomcastd="):
            return arg.split("=", 1)[1]
    return os.environ.get("ROOMCASTD")


def _has_amqp_bridge():
    binary = _binary_from_argv()
    if not binary or not os.access(binary, os.X_OK):
        return False
    r = subprocess.run([binary, "--help"], env=harness.clean_env(), capture_output=True,
                       text=True, timeout=10)
    return "--amqp-url" in r.stdout


HAS_BRIDGE = _has_amqp_bridge()
NO_BRIDGE = ("roomcastd --help lists no --amqp-url: the RabbitMQ bridge (issue 4) is not in "
             "this binary, so the nodes run without the broker that scripts/cluster started")


# -- the runner ----------------------------------------------------------------------

class Runner:
    """scripts/cluster with its state in a temporary directory."""

    # What nginx answers for a dead node's /nodes/NODE/...: its port refuses.
    dead_node_statuses = (502,)

    def __init__(self, lb):
        self.lb = lb
        self.dir = tempfile.mkdtemp(prefix=f"roomcast-topology-{lb}-")
        self.status = None

    def run(self, *args, timeout=90):
        r = subprocess.run([CLUSTER, "--dir", self.dir] + [str(a) for a in args],
                           env=harness.clean_env(), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError(f"scripts/cluster {' '.join(map(str, args))} exited "
                                 f"{r.returncode}:\n{r.stdout}{r.stderr}")
        return r.stdout

    def up(self):
        # --owner-pid: if this process is killed (CTest's timeout), the
        # runner's watchdog stops the cluster.
        self.up_output = self.run("up", "3", "--lb", self.lb, "--port", "0",
                                  "--roomcastd", harness.resolve_binary(),
                                  "--owner-pid", os.getpid(), "--", *NODE_ARGS)
        self.refresh()
        self.port = self.status["lb"]["port"]
        return self

    def refresh(self):
        self.status = json.loads(self.run("status", "--json"))
        return self.status

    def down(self):
        try:
            self.run("down", timeout=120)
        finally:
            if os.environ.get("TOPOLOGY_KEEP_STATE"):
                print(f"\n  state and logs kept in {self.dir}", file=sys.stderr)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self, name, lines=40):
        try:
            return self.run("logs", name, "-n", lines)
        except AssertionError as e:
            return str(e)

    def url(self, user):
        return f"ws://{harness.HOST}:{self.port}/ws?" + urllib.parse.urlencode({"user": user})

    def get(self, path):
        """(status, body) of GET path through the load balancer."""
        status, _, body = harness.http_request(self.port, "GET", path)
        return status, body

    def node_metric(self, node, name):
        status, body = self.get(f"/nodes/{node}/metrics")
        if status != 200:
            raise AssertionError(f"/nodes/{node}/metrics answered {status}: {body[:200]}")
        return harness.parse_metrics(body).get((name, frozenset()))

    def connections(self):
        return {n: self.node_metric(n, "roomcast_connections") for n in NODES}


# -- clients that come back ---------------------------------------------------------------

class Session:
    """One WebSocket connection of a Member: what it received while open."""

    def __init__(self, node):
        self.node = node
        self.opened = None        # when its `joined` arrived
        self.closed = None
        self.close_code = None
        self.segments = []        # [epoch, joined seq, [message frames]] per `joined`
        self.received = set()     # (epoch, seq)

    def joined(self, frame):
        if self.opened is None:
            self.opened = time.monotonic()
        self.segments.append([frame["epoch"], frame["seq"], []])

    def message(self, frame):
        epoch = self.segments[-1][0] if self.segments else None
        self.segments[-1][2].append(frame)
        self.received.add((epoch, frame["seq"]))


class Member:
    """A user connected through the load balancer, optionally in `room`. When
    its node closes the connection it reconnects through the load balancer
    and joins again (a new Session). Records acks of its publishes and sends
    and every private message it receives."""

    def __init__(self, runner, user, room=None):
        self.runner = runner
        self.offline_for = 0.0    # seconds to stay away after a close
        self.user = user
        self.room = room
        self.sessions = []
        self.ws = None
        self.stopping = False
        self.pending = {}                     # id -> (kind, payload, t_send)
        self.acked = []                       # (kind, payload, epoch, seq, t_send, t_ack, room)
        self.errors = []
        self.privates = []                    # data of every private frame
        self.counter = 0
        self.connected = asyncio.Event()
        self.failure = None
        self.task = None

    @property
    def session(self):
        return self.sessions[-1] if self.sessions else None

    async def open(self, attempts=40):
        """Connects (retrying while the load balancer has no node for it) and joins."""
        last = None
        for _ in range(attempts):
            try:
                ws = await harness.connect(self.runner.url(self.user))
                welcome = await harness.recv_json(ws)
                break
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as e:
                last = e
                await asyncio.sleep(0.25)
        else:
            self.failure = f"no connection through the load balancer: {last!r}"
            raise AssertionError(f"{self.user}: {self.failure}")
        if welcome.get("type") != "welcome":
            raise AssertionError(f"{self.user}: first frame {welcome}")
        self.ws = ws
        self.sessions.append(Session(welcome["node"]))
        if self.room:
            await harness.send_json(ws, {"type": "join", "room": self.room, "id": "join"})
            for _ in range(10000):
                frame = await harness.recv_json(ws, 10)
                self.handle(frame)
                if frame["type"] == "joined":
                    break
        self.connected.set()
        return self

    def handle(self, frame):
        kind = frame.get("type")
        s = self.session
        if kind == "joined":
            s.joined(frame)
        elif kind == "message":
            s.message(frame)
        elif kind == "private":
            self.privates.append(frame["data"])
        elif kind == "ack" and frame.get("id") in self.pending:
            what, payload, t_send = self.pending.pop(frame["id"])
            epoch = s.segments[-1][0] if s.segments else None
            self.acked.append((what, payload, epoch, frame.get("seq"), t_send,
                               time.monotonic(), self.room))
        elif kind == "error":
            self.pending.pop(frame.get("id"), None)
            self.errors.append(frame)

    async def run(self):
        """Reads until stopped; reconnects after every close the node makes."""
        while True:
            try:
                async for raw in self.ws:
                    self.handle(json.loads(raw))
            except websockets.exceptions.ConnectionClosed:
                pass
            s = self.session
            s.closed = time.monotonic()
            s.close_code = self.ws.close_code
            self.connected.clear()
            self.pending.clear()  # never acked: maybe delivered, maybe not
            if self.stopping:
                return
            await asyncio.sleep(self.offline_for)
            await self.open()

    def start(self):
        self.task = asyncio.ensure_future(self.run())

    async def publish(self, data):
        if not self.connected.is_set():
            return False
        self.counter += 1
        rid = f"p{self.counter}"
        self.pending[rid] = ("publish", data, time.monotonic())
        try:
            await harness.send_json(self.ws, {"type": "publish", "room": self.room, "data": data,
                                              "echo": True, "id": rid})
        except websockets.exceptions.ConnectionClosed:
            self.pending.pop(rid, None)
            return False
        return True

    async def send_private(self, to, data):
        if not self.connected.is_set():
            return False
        self.counter += 1
        rid = f"s{self.counter}"
        self.pending[rid] = ("send", (to, data), time.monotonic())
        try:
            await harness.send_json(self.ws, {"type": "send", "to": to, "data": data, "id": rid})
        except websockets.exceptions.ConnectionClosed:
            self.pending.pop(rid, None)
            return False
        return True

    async def stop(self):
        self.stopping = True
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 5)
            except Exception:
                pass
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 10)
            except Exception:
                self.task.cancel()


async def open_members(runner, users, room=None):
    members = [Member(runner, u, room) for u in users]
    await asyncio.wait_for(asyncio.gather(*(m.open() for m in members)), 60)
    for m in members:
        m.start()
    return members


async def stop_members(members):
    await asyncio.gather(*(m.stop() for m in members), return_exceptions=True)


async def wait_until(what, check, timeout):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.05)


def acked_publishes(members):
    return [a for m in members for a in m.acked if a[0] == "publish"]


def room_problems(members, acked):
    """What broke the room's promises: gaps or repeats in a session's seq,
    a publisher's order, or an acked message missing from a session that was
    open from before it was sent until SLACK after its ack."""
    problems = []
    for m in members:
        for i, s in enumerate(m.sessions):
            for epoch, start, frames in s.segments:
                seqs = [f["seq"] for f in frames]
                if seqs != list(range(start + 1, start + 1 + len(seqs))):
                    problems.append(f"{m.user} session {i} on {s.node} epoch {epoch}: seqs after "
                                    f"joined {start} are {seqs[:10]}...{seqs[-5:]}")
                by_publisher = collections.defaultdict(list)
                for f in frames:
                    d = f.get("data")
                    if isinstance(d, dict) and "p" in d:
                        by_publisher[d["p"]].append(d["n"])
                for p, ns in by_publisher.items():
                    if ns != sorted(ns):
                        problems.append(f"{m.user} session {i}: publisher {p} out of order")
    for _, data, epoch, seq, t_send, t_ack, room in acked:
        for m in members:
            if m.room != room:
                continue
            for i, s in enumerate(m.sessions):
                if s.opened is None or s.opened >= t_send:
                    continue
                if s.closed is not None and s.closed <= t_ack + SLACK:
                    continue
                if (epoch, seq) not in s.received:
                    problems.append(f"{m.user} session {i} on {s.node} (open throughout) "
                                    f"missed seq {seq} {data}")
    return problems


async def chat(members, publishers, per_publisher, timeout=15.0):
    """Each publisher publishes `per_publisher` messages (waiting for every
    ack); returns the acks after every member has them all."""
    t0 = time.monotonic()
    for n in range(per_publisher):
        for p in publishers:
            await p.publish({"p": p.user, "n": n})
        await asyncio.sleep(0.005)

    def acks():
        return [a for a in acked_publishes(members) if a[4] >= t0]

    expected = per_publisher * len(publishers)
    await wait_until("acks", lambda: len(acks()) >= expected, timeout)
    acked = acks()
    top = max(a[3] for a in acked)
    await wait_until("delivery", lambda: all(
        any(f["seq"] >= top for f in m.session.segments[-1][2]) for m in members), timeout)
    return acked


# -- nginx: spread, chat, AMQP, a killed node, a rolling restart ------------------------------

class NginxTopology(unittest.IsolatedAsyncioTestCase):

    @classmethod
    def setUpClass(cls):
        cls.runner = Runner("nginx").up()

    @classmethod
    def tearDownClass(cls):
        cls.runner.down()

    def fail_with_logs(self, msg):
        logs = "\n".join(f"--- {n}\n{self.runner.logs(n)}" for n in NODES + ("lb",))
        self.fail(f"{msg}\n{logs}")

    async def test_1_300_clients_spread_over_the_nodes_and_chat_across_them_without_loss(self):
        rooms = ["town-a", "town-b", "town-c"]
        members = []
        try:
            for r, room in enumerate(rooms):
                members += await open_members(self.runner,
                                              [f"spread{r}-{i}" for i in range(100)], room)
            by_node = collections.Counter(m.session.node for m in members)
            self.assertEqual(set(by_node), set(NODES), f"not spread: {by_node}")
            # What each node counts, scraped through nginx, matches the welcomes.
            await wait_until(f"connections {by_node}",
                             lambda: self.runner.connections() == dict(by_node), 5)
            for node, count in by_node.items():
                self.assertGreater(count, 0)
                self.assertGreaterEqual(count, 50, f"least_conn left {node} behind: {by_node}")
            # Three publishers per room, on as many nodes as the room has.
            acked = []
            for room in rooms:
                in_room = [m for m in members if m.room == room]
                publishers, seen = [], set()
                for m in in_room:
                    if m.session.node not in seen:
                        seen.add(m.session.node)
                        publishers.append(m)
                self.assertEqual(len(publishers), 3)
                acked += await chat(in_room, publishers, 10)
            self.assertEqual(len(acked), 90)
            problems = room_problems(members, acked)
            self.assertEqual(problems, [])
            for m in members:
                self.assertEqual(len(m.session.segments[-1][2]), 30, m.user)
            self.assertEqual([e for m in members for e in m.errors], [])
        finally:
            await stop_members(members)

    @unittest.skipUnless(HAS_BRIDGE, NO_BRIDGE)
    @unittest.skipUnless(shutil.which("amqp-publish"), "amqp-publish missing: "
                         "scripts/install-deps --test installs amqp-tools")
    async def test_2_an_amqp_publish_reaches_members_on_every_node_once(self):
        room = "amqp-town"
        members = []
        try:
            for i in range(12):
                members += await open_members(self.runner, [f"amqp{i}"], room)
                if {m.session.node for m in members} == set(NODES):
                    break
            self.assertEqual({m.session.node for m in members}, set(NODES))
            url = self.runner.status["rabbitmq"]["url"]
            r = subprocess.run(["amqp-publish", "-u", url, "-e", "roomcast", "-r", f"room.{room}",
                                "-H", "from: backend", "-b", '{"n":1}'],
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 0, r.stderr)
            await wait_until("the AMQP message", lambda: all(
                m.session.segments[-1][2] for m in members), 10)
            await asyncio.sleep(0.3)
            for m in members:
                frames = m.session.segments[-1][2]
                self.assertEqual(len(frames), 1, f"{m.user}: {frames}")
                self.assertEqual(frames[0]["data"], {"n": 1})
        finally:
            await stop_members(members)

    async def test_3_a_killed_node_s_clients_reconnect_through_nginx_and_keep_chatting(self):
        room, victim = "after-kill", "node3"
        survivors = [n for n in NODES if n != victim]
        members = []
        try:
            members = await open_members(self.runner, [f"kill{i}" for i in range(60)], room)
            on_victim = [m for m in members if m.session.node == victim]
            self.assertTrue(on_victim, "nobody on the victim")
            self.runner.run("kill", victim)
            t0 = time.monotonic()
            # Its clients notice, come back through nginx to a survivor and join again.
            await wait_until("reconnection", lambda: all(
                m.connected.is_set() and m.session.node != victim and m.session.segments
                for m in members), 15)
            took = time.monotonic() - t0
            for m in on_victim:
                self.assertEqual(len(m.sessions), 2, m.user)
                self.assertEqual(m.sessions[0].close_code, 1006)
            # Everyone keeps chatting: publishers on both survivors, one of them a
            # client of the dead node.
            publishers = [on_victim[0]] + [next(m for m in members if m.session.node == n
                                                and m not in on_victim) for n in survivors]
            acked = await chat(members, publishers, 10)
            self.assertEqual(room_problems(members, acked), [])
            # New connections go to the live nodes only.
            fresh = await open_members(self.runner, [f"fresh{i}" for i in range(30)])
            members += fresh
            self.assertEqual({m.session.node for m in fresh} - set(survivors), set())
            self.assertIn(self.runner.get(f"/nodes/{victim}/metrics")[0],
                          self.runner.dead_node_statuses)
            await wait_until("connections on the survivors", lambda: sum(
                self.runner.node_metric(n, "roomcast_connections") for n in survivors)
                == len(members), 5)
            print(f"\n  {len(on_victim)} clients of {victim} back through nginx in "
                  f"{took:.2f}s", file=sys.stderr)
        finally:
            await stop_members(members)
            self.runner.run("start", victim)

    async def test_4_a_rolling_restart_under_traffic_loses_no_room_or_private_message(self):
        room = "rolling"
        members, sender = [], None
        stop = asyncio.Event()

        async def publish_loop(p):
            for _ in range(100000):
                if stop.is_set():
                    return
                await p.publish({"p": p.user, "n": p.counter})
                await asyncio.sleep(0.05)

        async def private_loop(targets):
            for n in range(100000):
                if stop.is_set():
                    return
                await sender.send_private(targets[n % len(targets)], {"n": n})
                await asyncio.sleep(0.03)

        try:
            members = await open_members(self.runner, [f"roll{i}" for i in range(45)], room)
            sender = (await open_members(self.runner, ["roll-sender"]))[0]
            # One publisher per node (nginx may still be skipping a node
            # restarted by the test before: fail_timeout).
            publishers = list({m.session.node: m for m in members}.values())
            publishers += members[:3 - len(publishers)]
            # The private messages' targets stay offline for a while after
            # each close, so that some messages wait for them.
            targets = [m.user for m in members[::3]]
            for m in members[::3]:
                m.offline_for = 0.5
            loops = [asyncio.ensure_future(publish_loop(p)) for p in publishers]
            loops.append(asyncio.ensure_future(private_loop(targets)))
            loop = asyncio.get_running_loop()
            t_start = time.monotonic()
            await asyncio.sleep(1.0)
            steps = []
            for node in NODES:
                t0 = time.monotonic()
                out = await loop.run_in_executor(None, self.runner.run, "stop", node)
                # Back first, so that a failure here leaves the cluster whole
                # for the tests after this one.
                await loop.run_in_executor(None, self.runner.run, "start", node)
                if "killing it" in out:
                    self.fail_with_logs(f"{node} did not stop by itself: {out}")
                took = re.search(r"stopped in (\S+)", out).group(1)
                steps.append(f"{node} at {t0 - t_start:.1f}s (stop {took}, "
                             f"back after {time.monotonic() - t0:.1f}s)")
                await asyncio.sleep(1.0)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*loops), 10)
            # Everything acked has arrived (or never will).
            acked = acked_publishes(members)
            top = max(a[3] for a in acked)
            problems = []

            def behind():
                return [m for m in members if not (
                    m.connected.is_set() and m.session.received
                    and max(s for _, s in m.session.received) >= top)]

            try:
                await wait_until("room delivery", lambda: not behind(), 15)
            except AssertionError:
                problems += [f"{m.user}: connected {m.connected.is_set()}, {len(m.sessions)} "
                             f"sessions, on {m.session.node}, last seq "
                             f"{max((s for _, s in m.session.received), default=None)} < {top}; "
                             + ", ".join(f"{s.node} {(s.opened or 0) - t_start:.1f}-"
                                         f"{(s.closed or 0) - t_start:.1f} {s.close_code}"
                                         for s in m.sessions)
                             + f" now {time.monotonic() - t_start:.1f} {m.failure}"
                             for m in behind()]
            sent_to = collections.defaultdict(set)
            for what, (to, data), *_ in (a for a in sender.acked if a[0] == "send"):
                sent_to[to].add(data["n"])
            by_user = {m.user: m for m in members}
            try:
                await wait_until("private delivery", lambda: all(
                    sent_to[u] <= {d["n"] for d in by_user[u].privates} for u in sent_to), 15)
            except AssertionError:
                pass  # reported below
            await asyncio.sleep(0.3)

            problems += room_problems(members, acked)
            epochs = {seg[0] for m in members for s in m.sessions for seg in s.segments}
            if len(epochs) != 1:
                problems.append(f"the room changed epoch in a planned restart: {epochs}")
            for u, ns in sent_to.items():
                got = collections.Counter(d["n"] for d in by_user[u].privates)
                missing = sorted(ns - set(got))
                twice = sorted(n for n, c in got.items() if c > 1)
                if missing:
                    problems.append(f"private messages to {u} lost: {missing}")
                if twice:
                    problems.append(f"private messages to {u} delivered twice: {twice}")
            reconnects = sum(len(m.sessions) - 1 for m in members)
            offline = 0
            for what, (to, data), _, _, t_send, *_ in sender.acked:
                ss = by_user[to].sessions
                offline += any(a.closed is not None and a.closed < t_send
                               and (b.opened is None or t_send < b.opened)
                               for a, b in zip(ss, ss[1:]))
            if offline == 0:
                problems.append("no private message was sent while its target was offline")
            problems += [f"{m.user} was never moved by the restarts: on {m.session.node} "
                         f"since {m.session.opened - t_start:.1f}s"
                         for m in members if len(m.sessions) < 2]
            unexpected = [e for m in members + [sender] for e in m.errors]
            print(f"\n  rolling restart: {' '.join(steps)}; {len(acked)} room messages and "
                  f"{sum(map(len, sent_to.values()))} private messages acked ({offline} while "
                  f"the target was offline), {reconnects} "
                  f"reconnects, {len(unexpected)} error frames "
                  f"{collections.Counter(e.get('code') for e in unexpected)}", file=sys.stderr)
            if problems:
                self.fail_with_logs("\n".join(problems[:30]))
        finally:
            stop.set()
            await stop_members(members + ([sender] if sender else []))


# -- HAProxy: the same smoke test ---------------------------------------------------------------

class HAProxyTopology(unittest.IsolatedAsyncioTestCase):

    @classmethod
    def setUpClass(cls):
        cls.runner = Runner("haproxy").up()

    @classmethod
    def tearDownClass(cls):
        cls.runner.down()

    async def test_a_frozen_node_gets_no_new_clients_and_takes_them_again_once_thawed(self):
        # A frozen node still accepts TCP connections (the kernel does), but
        # never answers: HAProxy's health checks take it out of the rotation
        # within seconds, and put it back once it answers again. (nginx
        # cannot: docs/deploy.md.)
        victim = "node2"
        others = {n for n in NODES if n != victim}
        self.runner.run("kill", victim, "--signal", "STOP")
        members = []
        try:
            # `fall 2` with `inter 1s`: two checks, each timing out after 1 s,
            # fail within 4 s of the stop.
            settle = 5.0
            await asyncio.sleep(settle)
            fresh = []
            for i in range(12):
                t1 = time.monotonic()
                fresh += await open_members(self.runner, [f"ha-frozen{i}"])
                members.append(fresh[-1])
                # One sent to the frozen node would wait for the 5 s open
                # timeout before its retry.
                self.assertLess(time.monotonic() - t1, 4.0, f"client {i} was slow to connect")
            self.assertEqual({m.session.node for m in fresh}, others)
        finally:
            self.runner.run("kill", victim, "--signal", "CONT")
        try:
            # Thawed, it answers its checks again (`rise 2`) and, having the
            # fewest connections, gets the next new clients (leastconn).
            await wait_until(f"{victim} back in the rotation",
                             lambda: self.runner.get(f"/nodes/{victim}/healthz")[0] == 200, 15)
            later = []
            deadline = time.monotonic() + 20
            while not any(m.session.node == victim for m in later):
                self.assertLess(time.monotonic(), deadline,
                                f"no new client on {victim}: "
                                f"{collections.Counter(m.session.node for m in later)}")
                later += await open_members(self.runner, [f"ha-thawed{len(later)}"])
                await asyncio.sleep(0.2)
            members += later
            # And it serves them: a room across all three nodes loses nothing.
            room = "after-thaw"
            chatters = []
            for i in range(30):
                chatters += await open_members(self.runner, [f"ha-thaw-chat{i}"], room)
                members.append(chatters[-1])
                if {m.session.node for m in chatters} == set(NODES):
                    break
            publishers = {m.session.node: m for m in chatters}
            self.assertEqual(set(publishers), set(NODES))
            acked = await chat(chatters, list(publishers.values()), 5)
            self.assertEqual(len(acked), 15)
            self.assertEqual(room_problems(chatters, acked), [])
        finally:
            await stop_members(members)

    async def test_clients_spread_chat_without_loss_and_avoid_a_killed_node(self):
        room = "via-haproxy"
        members = []
        try:
            members = await open_members(self.runner, [f"ha{i}" for i in range(30)], room)
            by_node = collections.Counter(m.session.node for m in members)
            self.assertEqual(set(by_node), set(NODES), f"not spread: {by_node}")
            await wait_until(f"connections {by_node}",
                             lambda: self.runner.connections() == dict(by_node), 5)
            publishers = [next(m for m in members if m.session.node == n) for n in NODES]
            acked = await chat(members, publishers, 10)
            self.assertEqual(len(acked), 30)
            self.assertEqual(room_problems(members, acked), [])
            self.runner.run("kill", "node2")
            await wait_until("reconnection", lambda: all(
                m.connected.is_set() and m.session.node != "node2" for m in members), 15)
            fresh = await open_members(self.runner, [f"ha-fresh{i}" for i in range(20)])
            members += fresh
            self.assertEqual({m.session.node for m in fresh}, {"node1", "node3"})
        finally:
            await stop_members(members)


# -- the files for Docker ---------------------------------------------------------------------------

class DeploymentFiles(unittest.TestCase):

    @unittest.skipUnless(shutil.which("docker-compose"), "docker-compose missing: "
                         "scripts/install-deps --test installs it")
    def test_docker_compose_config_accepts_the_compose_file(self):
        r = subprocess.run(["docker-compose", "-f", os.path.join(ROOT, "docker-compose.yml"),
                            "config"], cwd=ROOT, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        for service in ("rabbitmq", "node1", "node2", "node3", "lb"):
            self.assertIn(f"  {service}:", r.stdout)

    def test_haproxy_accepts_the_compose_form_of_its_configuration(self):
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        r = subprocess.run([haproxy, "-c", "-n", "1000", "-f",
                            os.path.join(ROOT, "config", "haproxy.cfg")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_the_runtime_image_installs_every_library_roomcastd_links(self):
        with open(os.path.join(ROOT, "Dockerfile")) as f:
            dockerfile = f.read()
        runtime = dockerfile[dockerfile.index("AS runtime"):]
        install = re.search(r"apt-get install[^\n]*\\\n(.*?)(?:&&|\n\n)", runtime, re.S).group(1)
        listed = set(re.findall(r"[a-z0-9][a-z0-9.+-]+", install.replace("\\", " "))) - {"curl"}
        # Each listed package and everything it depends on.
        r = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends",
                            "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces",
                            "--no-enhances"] + sorted(listed),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        available = set(re.findall(r"^(\S+)$", r.stdout, re.M)) | \
            set(re.findall(r"Depends: (\S+)", r.stdout))
        ldd = subprocess.run(["ldd", harness.resolve_binary()], capture_output=True, text=True,
                             timeout=30).stdout
        missing = []
        for lib in re.findall(r"=> (/\S+)", ldd):
            owner = None
            for path in {lib, os.path.realpath(lib), re.sub(r"^/usr", "", os.path.realpath(lib))}:
                q = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
                if q.returncode == 0:
                    owner = q.stdout.split(":")[0]
                    break
            self.assertIsNotNone(owner, f"no Debian package owns {lib}")
            if owner not in available:
                missing.append(f"{lib} ({owner})")
        self.assertEqual(missing, [], "add these to the Dockerfile's runtime stage")


if __name__ == "__main__":
    harness.main()
