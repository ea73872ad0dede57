"""Churn: a two-node cluster that clients keep joining and leaving ends
where it started. Rounds of clients spread over both nodes connect, join
rooms owned by either node, publish, send private messages to a user online
and to one who comes only in the next round (its memory inbox), leave a room
and close. Once the rooms and users have idled out (`--room-idle-timeout
1s`), each node holds as many actors as after the first round
(`roomcast_actors`), no connection, user, room or inbox byte, and its RSS has
not grown with the number of rounds. Every private message kept for an
offline user arrives in its next connection.

Bounded: ROUNDS rounds of CLIENTS clients, each connected for about a second.
"""

import asyncio
import json
import time
import unittest

import harness
from test_cluster import Cluster

ROUNDS = 6
CLIENTS = 120
ROOMS = 16
# Resident memory a node may gain between the first quiet state and the
# last: a leak of 1 KiB per connection would be ROUNDS * CLIENTS / 2 KiB per
# node (360 KiB), so this bound catches leaks of about 4 KiB per connection
# and more, and leaves the allocator room for its own growth.
RSS_SLACK_KIB = 1536


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


async def send(ws, obj):
    await ws.send(json.dumps(obj, separators=(",", ":")))


class ChurnTest(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.cluster = Cluster(2, "--room-idle-timeout", "1s", "--rate-limit", "1000",
                               "--rate-burst", "1000").start()
        self.nodes = self.cluster.nodes

    def tearDown(self):
        self.cluster.stop()

    def gauges(self, node):
        return {name: node.metric(f"roomcast_{name}")
                for name in ("actors", "connections", "users", "rooms", "inbox_bytes")}

    async def wait_quiet(self, actors=None, timeout=20.0):
        """Waits until no node has a connection, user, room or inbox byte
        (and, if given, each node has `actors[i]` actors); returns the
        gauges of each node."""
        deadline = time.monotonic() + timeout
        while True:
            now = [self.gauges(n) for n in self.nodes]
            quiet = all(g["connections"] == 0 and g["users"] == 0 and g["rooms"] == 0
                        and g["inbox_bytes"] == 0 for g in now)
            if quiet and (actors is None or [g["actors"] for g in now] == actors):
                return now
            if time.monotonic() > deadline:
                raise AssertionError(f"nodes not back to their quiet state: {now}"
                                     + (f", expected actors {actors}" if actors else ""))
            await asyncio.sleep(0.2)

    async def client(self, rnd, i, expect_private, keep_for_next):
        """One client of round `rnd`: its work, and what it received."""
        user = f"c{rnd}-{i}"
        node = self.nodes[i % 2]
        ws = await node.connect(user=user)
        got = []
        try:
            rooms = [f"churn-{(rnd * 7 + i + k * 5) % ROOMS}" for k in range(3)]
            for k, room in enumerate(rooms):
                await send(ws, {"type": "join", "room": room, "id": f"j{k}"})
            for k in range(2):
                await send(ws, {"type": "publish", "room": rooms[k], "data": {"k": k}, "id": f"p{k}"})
            await send(ws, {"type": "send", "to": f"c{rnd}-{(i + 1) % CLIENTS}", "data": "now"})
            if keep_for_next:
                await send(ws, {"type": "send", "to": f"c{rnd + 1}-{i}",
                                "data": {"from": user, "round": rnd}})
            await send(ws, {"type": "leave", "room": rooms[0], "id": "l"})
            deadline = time.monotonic() + 1.0
            while (left := deadline - time.monotonic()) > 0:
                try:
                    got.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
                except asyncio.TimeoutError:
                    break
        finally:
            await ws.close()
        errors = [f for f in got if f.get("type") == "error"]
        self.assertEqual(errors, [], f"{user} got errors")
        kept = [f["data"] for f in got
                if f.get("type") == "private" and isinstance(f.get("data"), dict)]
        if expect_private:
            self.assertEqual(kept, [{"from": f"c{rnd - 1}-{i}", "round": rnd - 1}],
                             f"{user}: the message kept for it while offline")
        else:
            self.assertEqual(kept, [])
        acks = {f["id"] for f in got if f.get("type") in ("joined", "ack", "left")}
        self.assertTrue({"j0", "j1", "j2", "p0", "p1", "l"} <= acks, f"{user} got {acks}")

    async def rounds(self, first, last):
        """Rounds `first` to `last`: each but the last sends every user of the
        next round a private message while that user is offline."""
        for rnd in range(first, last + 1):
            await asyncio.gather(*(self.client(rnd, i, rnd > first, rnd < last)
                                   for i in range(CLIENTS)))

    async def test_nodes_return_to_their_quiet_state_after_rounds_of_clients(self):
        # The first round and its idle-out warm up what a node keeps for good
        # (thread-local caches, the allocator's arenas, lazily made actors).
        await self.rounds(0, 1)
        first = await self.wait_quiet()
        actors = [g["actors"] for g in first]
        rss = [rss_kib(n.proc.pid) for n in self.nodes]
        await self.rounds(2, ROUNDS + 1)
        last = await self.wait_quiet(actors)
        rss_after = [rss_kib(n.proc.pid) for n in self.nodes]
        print(f"\nchurn: {ROUNDS} rounds of {CLIENTS} clients; actors {actors}; "
              f"RSS KiB {rss} -> {rss_after}; gauges {last}")
        for before, after in zip(rss, rss_after):
            self.assertLess(after - before, RSS_SLACK_KIB)


if __name__ == "__main__":
    harness.main()
