"""Load: a back-to-back burst of 1000 publishes arrives complete and in
order; 200 concurrent clients in 10 rooms all receive every other member's
messages exactly once, in each publisher's order."""

import asyncio
import json
import time
import unittest

import harness
from harness import expect, recv_json, request, send_json


class BurstTest(harness.ServerTestCase):
    server_args = ("--rate-limit", "100000", "--rate-burst", "100000")

    async def test_burst_of_1000_in_order(self):
        room = self.unique("burst")
        pub = await self.client("burster")
        sub = await self.client("listener")
        await request(pub, {"type": "join", "room": room}, "joined")
        await request(sub, {"type": "join", "room": room}, "joined")
        n = 1000
        # Back to back, without waiting for anything in between.
        for i in range(n):
            await send_json(pub, {"type": "publish", "room": room, "data": {"i": i}})
        seqs, data = [], []
        deadline = time.monotonic() + 30
        for _ in range(n):
            msg = await expect(sub, "message", timeout=max(0.1, deadline - time.monotonic()))
            self.assertEqual((msg["room"], msg["from"]), (room, "burster"))
            seqs.append(msg["seq"])
            data.append(msg["data"]["i"])
        self.assertEqual(seqs, list(range(1, n + 1)))
        self.assertEqual(data, list(range(n)))
        # Nothing else for either side: no errors (rate limit), no extra copies.
        self.assertEqual(await request(pub, {"type": "ping", "id": "p"}, "pong"),
                         {"type": "pong", "id": "p"})
        self.assertEqual(await request(sub, {"type": "ping", "id": "q"}, "pong"),
                         {"type": "pong", "id": "q"})


class ManyClientsTest(unittest.IsolatedAsyncioTestCase):
    ROOMS = 10
    PER_ROOM = 20
    K = 5  # publishes per client

    def setUp(self):
        self.server = harness.Server("--rate-limit", "1000", "--rate-burst", "1000").start()

    def tearDown(self):
        self.assertEqual(self.server.stop(), 0)

    async def test_200_clients_10_rooms(self):
        s = self.server
        names = [(r, f"c{r}-{i}") for r in range(self.ROOMS) for i in range(self.PER_ROOM)]
        t0 = time.monotonic()
        clients = await asyncio.wait_for(
            asyncio.gather(*(s.connect(user) for _, user in names)), 30)
        try:
            self.assertEqual(await s.await_metric("roomcast_connections", len(names), timeout=10),
                             len(names))
            # Everyone joins first (barrier), so nobody can miss a message.
            async def join(ws, r):
                joined = await request(ws, {"type": "join", "room": f"load-{r}"}, "joined", timeout=20)
                self.assertEqual(joined["seq"], 0)
                return joined["epoch"]
            epochs = await asyncio.wait_for(
                asyncio.gather(*(join(ws, r) for ws, (r, _) in zip(clients, names))), 30)
            for r in range(self.ROOMS):
                self.assertEqual(len(set(epochs[r * self.PER_ROOM:(r + 1) * self.PER_ROOM])), 1)

            expect_each = (self.PER_ROOM - 1) * self.K

            async def publish(ws, r, user):
                for k in range(self.K):
                    await send_json(ws, {"type": "publish", "room": f"load-{r}",
                                         "data": {"from": user, "k": k}})

            async def collect(ws):
                got = []
                deadline = time.monotonic() + 60
                for _ in range(expect_each):
                    got.append(await expect(ws, "message",
                                            timeout=max(0.1, deadline - time.monotonic())))
                return got

            collectors = [asyncio.ensure_future(collect(ws)) for ws in clients]
            await asyncio.wait_for(
                asyncio.gather(*(publish(ws, r, u) for ws, (r, u) in zip(clients, names))), 30)
            received = await asyncio.wait_for(asyncio.gather(*collectors), 90)

            seq_owner = {}  # (room, seq) -> (from, k): the same for every member
            for (r, user), msgs in zip(names, received):
                room = f"load-{r}"
                # Exactly once: every other member's K messages, nothing of our own.
                pairs = [(m["from"], m["data"]["k"]) for m in msgs]
                want = {(f"c{r}-{i}", k) for i in range(self.PER_ROOM) for k in range(self.K)
                        if f"c{r}-{i}" != user}
                self.assertEqual(len(pairs), len(set(pairs)), f"duplicates at {user}")
                self.assertEqual(set(pairs), want, f"{user}")
                for m in msgs:
                    self.assertEqual(m["room"], room)
                    self.assertEqual(m["data"]["from"], m["from"])
                # Per-publisher order.
                by_pub = {}
                for frm, k in pairs:
                    by_pub.setdefault(frm, []).append(k)
                for frm, ks in by_pub.items():
                    self.assertEqual(ks, list(range(self.K)), f"order of {frm} at {user}")
                # seq strictly increasing, within 1..PER_ROOM*K, one owner per seq.
                seqs = [m["seq"] for m in msgs]
                self.assertEqual(seqs, sorted(seqs))
                self.assertEqual(len(set(seqs)), len(seqs))
                self.assertTrue(all(1 <= x <= self.PER_ROOM * self.K for x in seqs))
                for m in msgs:
                    owner = seq_owner.setdefault((room, m["seq"]), (m["from"], m["data"]["k"]))
                    self.assertEqual(owner, (m["from"], m["data"]["k"]))
            self.assertEqual(len(seq_owner), self.ROOMS * self.PER_ROOM * self.K)

            # Nothing extra is pending for anyone: the next frame is the pong.
            async def sync(ws, i):
                self.assertEqual(await request(ws, {"type": "ping", "id": i}, "pong"),
                                 {"type": "pong", "id": i})
            await asyncio.wait_for(asyncio.gather(*(sync(ws, i) for i, ws in enumerate(clients))), 30)

            total = len(names)
            self.assertEqual(s.metric("roomcast_messages_delivered_total"), total * expect_each)
            self.assertEqual(s.metric("roomcast_frames_received_total"), total * (1 + self.K + 1))
            self.assertEqual(s.metric("roomcast_fanout_latency_seconds_count"), total * self.K)
            self.assertEqual(s.metric("roomcast_rooms"), self.ROOMS)
            self.assertEqual(sum(s.metric("roomcast_errors_total", code=c) for c in
                                 ("bad_json", "bad_request", "unknown_type", "bad_name",
                                  "not_member", "forbidden", "rate_limited", "unavailable",
                                  "internal")), 0)
        finally:
            await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in clients),
                                                  return_exceptions=True), 30)
        self.assertEqual(await s.await_metric("roomcast_connections", 0, timeout=10), 0)
        self.assertEqual(s.metric("roomcast_closes_total", reason="client_closed"), len(names))
        self.assertLess(time.monotonic() - t0, 90)


if __name__ == "__main__":
    harness.main()
