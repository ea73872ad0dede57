"""Private messages while the nodes that own the users crash or stop.

A 3-node cluster; a sender and twelve recipients are all on n1, which is
never stopped. The recipients connect and disconnect every 0.2-1.5 s, so a
message finds its user online or offline; the sender sends one private
message at a time, round robin, and counts the acknowledged ones. Meanwhile
n2 or n3 (which own most users) is killed (`kill -9`) or stopped
(SIGTERM) every 3-6 s and started again. At the end every recipient reads
what is waiting for it, and every acknowledged message must have arrived.

- With RabbitMQ (a private rabbitmq-server, tests/integration/broker.py):
  owners are killed; offline messages are stored durably.
- Without a broker: owners stop gracefully; the in-memory inbox moves with
  the user (a killed owner loses it, as documented).

A recipient reads what arrived before the server's close after closing: a
client that stops reading when it closes drops a frame the server wrote as
the close crossed it (docs/protocol.md, "Delivery and order"), which is not
a loss of the server's. Bounded: 30 s of traffic per test, at most ~100
messages a second. SEED picks the chaos schedule (default 1).
"""

import asyncio
import json
import os
import random
import signal
import time
import unittest

import harness
from broker import Broker
from test_cluster import Cluster

USERS = [f"u{i}" for i in range(12)]
TRAFFIC_SECONDS = float(os.environ.get("CHAOS_SECONDS", "30"))


class Run:
    """One run's record: what was acknowledged, what arrived, what happened."""

    def __init__(self, cluster, seed):
        self.cluster = cluster
        self.rng = random.Random(seed)
        self.acked = {u: [] for u in USERS}
        self.got = {u: [] for u in USERS}
        self.online = {u: 0 for u in USERS}  # open connections right now
        self.acked_offline = 0  # acknowledged while the user had no connection
        self.refused = {}
        self.after_close = 0  # frames read after the client's own close
        self.events = []
        self.stop = asyncio.Event()

    def take(self, user, frame):
        if frame["type"] == "private":
            self.got[user].append(frame["data"]["n"])

    async def recipient(self, node, user):
        while not self.stop.is_set():
            try:
                ws = await node.connect(user=user)
            except Exception as e:  # n1 is never stopped: count it
                self.events.append(f"{user}: connect failed: {e!r}")
                await asyncio.sleep(0.3)
                continue
            self.online[user] += 1
            end = time.monotonic() + self.rng.uniform(0.2, 1.5)
            try:
                while (left := end - time.monotonic()) > 0:
                    try:
                        self.take(user, json.loads(await asyncio.wait_for(ws.recv(), left)))
                    except asyncio.TimeoutError:
                        break
            finally:
                self.online[user] -= 1
                await ws.close()
            await self.read_after_close(ws, user)
            await asyncio.sleep(self.rng.uniform(0.2, 1.5))

    async def read_after_close(self, ws, user):
        """websockets keeps the frames that came before the server's close."""
        try:
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 2))
                self.after_close += frame["type"] == "private"
                self.take(user, frame)
        except Exception:
            pass

    async def sender(self, node):
        ws = await node.connect(user="sender")
        k = 0
        while not self.stop.is_set():
            user = USERS[k % len(USERS)]
            k += 1
            offline = self.online[user] == 0
            await ws.send(json.dumps({"type": "send", "to": user, "data": {"n": k}, "id": k}))
            answer = None
            deadline = time.monotonic() + 15
            while answer is None and time.monotonic() < deadline:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 15))
                if frame.get("id") == k:
                    answer = frame
            if answer is None:
                self.events.append(f"send {k}: no answer in 15 s")
            elif answer["type"] == "ack":
                self.acked[user].append(k)
                self.acked_offline += offline and self.online[user] == 0
            else:
                self.refused[k] = answer.get("code")
            await asyncio.sleep(0.01)
        await ws.close()

    async def chaos(self, how):
        loop = asyncio.get_running_loop()
        while not self.stop.is_set():
            await asyncio.sleep(self.rng.uniform(3, 6))
            if self.stop.is_set():
                break
            i = self.rng.choice([1, 2])
            node = self.cluster.nodes[i]
            self.events.append(f"{how} {node.node}")
            if how == "kill":
                os.kill(node.proc.pid, signal.SIGKILL)
                await loop.run_in_executor(None, node.proc.wait)
            else:
                await loop.run_in_executor(None, node.terminate)
            await asyncio.sleep(self.rng.uniform(0.5, 3))
            node.stop()
            self.cluster.nodes[i] = self.cluster._node(i)
            await loop.run_in_executor(None, self.cluster.nodes[i].start)

    async def final_read(self, node, user, seconds=8):
        ws = await node.connect(user=user)
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                self.take(user, json.loads(await asyncio.wait_for(ws.recv(), left)))
            except asyncio.TimeoutError:
                break
        await ws.close()
        await self.read_after_close(ws, user)

    async def play(self, how):
        n1 = self.cluster.nodes[0]
        tasks = [asyncio.create_task(self.recipient(n1, u)) for u in USERS]
        tasks.append(asyncio.create_task(self.sender(n1)))
        chaos = asyncio.create_task(self.chaos(how))
        await asyncio.sleep(TRAFFIC_SECONDS)
        self.stop.set()
        await chaos
        await asyncio.gather(*tasks)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: self.cluster.wait_members(3, timeout=20))
        await asyncio.gather(*[self.final_read(n1, u) for u in USERS])

    def missing(self):
        return {u: sorted(set(self.acked[u]) - set(self.got[u])) for u in USERS
                if set(self.acked[u]) - set(self.got[u])}

    def out_of_order(self):
        """Messages that came after a newer one to the same user (reported only:
        a message that bounced off a closing tab may come after newer ones)."""
        count = 0
        for u in USERS:
            newest = 0
            for n in dict.fromkeys(self.got[u]):  # first arrivals, in order
                count += n < newest
                newest = max(newest, n)
        return count

    def summary(self):
        acked = sum(len(v) for v in self.acked.values())
        return (f"acknowledged {acked} ({self.acked_offline} while offline), "
                f"refused {self.refused}, out of order {self.out_of_order()}, "
                f"read after the client's close {self.after_close}, "
                f"events {self.events}")


class ChaosTestCase(unittest.IsolatedAsyncioTestCase):
    """Starts the servers outside the event loop (they block while starting)."""

    with_broker = False
    how = "term"

    def setUp(self):
        self.seed = int(os.environ.get("SEED", "1"))
        self.broker = Broker().start() if self.with_broker else None
        try:
            extra = ("--amqp-url", self.broker.url) if self.broker else ()
            self.cluster = Cluster(3, *extra).start()
        except BaseException:
            self.tearDown()
            raise

    def tearDown(self):
        if getattr(self, "cluster", None):
            self.cluster.stop()
        if self.broker:
            self.broker.cleanup()

    async def play_and_check(self):
        run = Run(self.cluster, self.seed)
        await run.play(self.how)
        print(f"\n{self.how}, seed {self.seed}: {run.summary()}")
        acked = sum(len(v) for v in run.acked.values())
        self.assertGreater(acked, 500, run.summary())
        self.assertGreater(run.acked_offline, 50, run.summary())  # the inbox path ran
        self.assertGreater(sum(e.startswith(self.how) for e in run.events), 2, run.summary())
        self.assertEqual(run.missing(), {}, run.summary())


class StoredMessages(ChaosTestCase):
    with_broker = True
    how = "kill"

    async def test_every_acknowledged_message_arrives_while_owners_are_killed(self):
        await self.play_and_check()


class MemoryInbox(ChaosTestCase):
    async def test_every_acknowledged_message_arrives_while_owners_stop(self):
        await self.play_and_check()



if __name__ == "__main__":
    harness.main()
