"""The RabbitMQ bridge with a real broker and real roomcastd processes.

A private rabbitmq-server (tests/integration/broker.py: own ports, own data
directory, stopped afterwards) serves a 3-node cluster started with
--amqp-url. Covers: room.R / user.U / broadcast from AMQP reaching clients
on every node exactly once; 100 offline private messages (WebSocket send and
AMQP mixed) delivered in order exactly once; kill -9 of the node a user is
connected to while 1000 stored messages drain; the broker stopped and
restarted under running nodes (and absent at start); dead letters; room
events.
"""

import asyncio
import contextlib
import json
import os
import subprocess
import time
import unittest

import websockets.exceptions

import harness
from broker import Broker, ClassBroker, free_port
from harness import (Server, expect, expect_silence, next_of_type,
                     close_all, privates_to_a_stalled_reader, recv_json, send_json)
from test_cluster import Cluster, owner_of


def inbox(user):
    return f"roomcast.user.{user}"


class BrokerTestCase(ClassBroker, unittest.IsolatedAsyncioTestCase):
    """One broker for the class; each test starts the nodes it needs."""

    async def asyncSetUp(self):
        self.clients = []
        self.clusters = []

    async def asyncTearDown(self):
        await close_all(self.clients)
        for c in self.clusters:
            c.stop()

    def cluster(self, n=3, *extra):
        c = Cluster(n, "--amqp-url", self.broker.url, *extra)
        self.clusters.append(c)
        return c.start()

    async def client(self, node, user):
        ws = await node.connect(user=user)
        self.clients.append(ws)
        return ws

    async def join(self, ws, room):
        await send_json(ws, {"type": "join", "room": room, "id": "j"})
        await expect(ws, "joined")

    async def wait_ready(self, node, ready, timeout=30):
        # Off the event loop: the test's clients keep answering pings meanwhile.
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: node.wait_ready(timeout=timeout, ready=ready))


class AmqpInboundTest(BrokerTestCase):

    async def test_room_user_and_broadcast_keys_reach_every_node_exactly_once(self):
        c = self.cluster()
        members = [await self.client(n, f"m{i}") for i, n in enumerate(c.nodes)]
        for ws in members:
            await self.join(ws, "amqp-room")
        self.broker.publish("room.amqp-room", [json.dumps({"n": i}) for i in range(5)],
                            headers={"from": "billing"})
        for ws in members:
            got = [await expect(ws, "message") for _ in range(5)]
            self.assertEqual(sorted(m["data"]["n"] for m in got), list(range(5)))
            self.assertTrue(all(m["from"] == "billing" and m["room"] == "amqp-room" for m in got))
            self.assertEqual(sorted(m["seq"] for m in got), [1, 2, 3, 4, 5])
        # user.U reaches U wherever it is connected, with the default sender.
        target = members[2]
        self.broker.publish("user.m2", '{"hello":"m2"}')
        frame = await expect(target, "private")
        self.assertEqual((frame["from"], frame["data"]), ("amqp", {"hello": "m2"}))
        self.assertIn("id", frame)
        self.broker.publish("user.m2", '"with id"', message_id="order-7")
        frame = await expect(target, "private")
        self.assertEqual((frame["id"], frame["data"]), ("order-7", "with id"))
        self.broker.publish("broadcast", '"everyone"', headers={"from": "ops"})
        for ws in members:
            frame = await expect(ws, "broadcast")
            self.assertEqual((frame["from"], frame["data"]), ("ops", "everyone"))
        for ws in members:
            await expect_silence(ws, 0.5)  # exactly once
        self.assertEqual(self.broker.wait_depth("roomcast.inbound", 0), 0)

    async def test_room_messages_published_back_to_back_arrive_in_order(self):
        c = self.cluster()
        members = [await self.client(n, f"o{i}") for i, n in enumerate(c.nodes)]
        for ws in members:
            await self.join(ws, "ordered-room")
        count = 300
        # Without publisher confirms: as fast as one channel goes, as a service would.
        self.broker.publish("room.ordered-room", [json.dumps(i) for i in range(count)],
                            confirm=False)
        for ws in members:
            got = [await expect(ws, "message") for _ in range(count)]
            self.assertEqual([m["data"] for m in got], list(range(count)))
            self.assertEqual([m["seq"] for m in got], list(range(1, count + 1)))

    async def test_the_other_node_consumes_once_the_consuming_one_dies(self):
        c = self.cluster(2)
        port = self.broker.active_consumer_port("roomcast.inbound")
        [victim] = [n for n in c.nodes if n.owns_local_port(port)]
        [survivor] = [n for n in c.nodes if n is not victim]
        ws = await self.client(survivor, "standby-member")
        await self.join(ws, "failover-room")
        room_on_victim = c.owner_of_room() is victim
        self.broker.publish("room.failover-room", json.dumps("before"))
        self.assertEqual((await expect(ws, "message"))["data"], "before")
        victim.kill()
        c.wait_members(1, nodes=[survivor])
        if room_on_victim:
            await expect(ws, "joined", timeout=10)  # the room restarted on the survivor
        self.broker.publish("room.failover-room", [json.dumps(i) for i in range(20)],
                            confirm=False)
        got = []
        while len(got) < 20:
            data = (await expect(ws, "message", timeout=15))["data"]
            # At least once: the victim may die before its ack of "before" leaves.
            if not (data == "before" and not got):
                got.append(data)
        self.assertEqual(got, list(range(20)))
        self.assertTrue(survivor.owns_local_port(
            self.broker.active_consumer_port("roomcast.inbound")))

    async def test_a_body_that_is_not_json_lands_in_the_dead_letter_queue(self):
        self.cluster(1)
        self.broker.drain("roomcast.dead")
        self.broker.publish("room.somewhere", "this is { not json", headers={"from": "svc"})
        self.assertEqual(self.broker.wait_depth("roomcast.dead", 1), 1)
        [(props, body)] = self.broker.drain("roomcast.dead")
        self.assertEqual(body, b"this is { not json")
        self.assertEqual(props.headers["x-roomcast-reason"], "body is not JSON")
        self.assertEqual(props.headers["x-roomcast-routing-key"], "room.somewhere")
        self.assertEqual(props.delivery_mode, 2)

    async def test_a_deleted_dead_letter_queue_is_declared_again(self):
        node = self.cluster(1).nodes[0]
        self.broker.delete(queue="roomcast.dead")  # an operator's cleanup
        self.assertIsNone(self.broker.queue_depth("roomcast.dead"))
        self.broker.publish("room.somewhere", "not json either", headers={"from": "svc"})
        self.assertEqual(self.broker.wait_depth("roomcast.dead", 1, timeout=5), 1)
        [(props, body)] = self.broker.drain("roomcast.dead")
        self.assertEqual(body, b"not json either")
        self.assertEqual(props.headers["x-roomcast-reason"], "body is not JSON")
        self.assertEqual(self.broker.queue_depth("roomcast.inbound"), 0)
        self.assertIn("queue 'roomcast.dead' refused a message", node.log())

    async def test_a_deleted_inbound_queue_is_declared_again_and_consumed(self):
        node = self.cluster(1).nodes[0]
        ws = await self.client(node, "after-delete")
        await self.join(ws, "after-delete-room")
        self.broker.delete(queue="roomcast.inbound")
        # The broker tells the consumer (consumer_cancel_notify); the node
        # reconnects, which declares the queue and its bindings again.
        deadline = time.monotonic() + 10
        while self.broker.queue_depth("roomcast.inbound") is None:
            self.assertLess(time.monotonic(), deadline, "roomcast.inbound was not declared again")
            await asyncio.sleep(0.1)
        self.broker.publish("room.after-delete-room", '"consumed again"')
        self.assertEqual((await expect(ws, "message", timeout=10))["data"], "consumed again")
        self.assertIn("the broker cancelled the consumer", node.log())

    async def test_a_deleted_exchange_is_declared_again_with_its_bindings(self):
        node = self.cluster(1).nodes[0]
        ws = await self.client(node, "after-exchange")
        await self.join(ws, "after-exchange-room")
        self.broker.delete(exchange="roomcast")  # the inbound bindings go with it
        # The broker tells no consumer; the node checks every 5 s.
        deadline = time.monotonic() + 15
        while "exchange 'roomcast' was deleted" not in node.log():
            self.assertLess(time.monotonic(), deadline, "the deleted exchange went unnoticed")
            await asyncio.sleep(0.2)
        await self.wait_ready(node, True)
        # Mandatory and confirmed: an unroutable message would raise here.
        self.broker.publish("room.after-exchange-room", '"routed again"')
        self.assertEqual((await expect(ws, "message", timeout=10))["data"], "routed again")

    async def test_a_room_logic_refusal_is_dead_lettered_not_requeued(self):
        from test_examples import example_server
        node = example_server("moderated", "--amqp-url", self.broker.url)
        node.start()
        self.addCleanup(node.stop)
        await self.wait_ready(node, True)
        ws = await self.client(node, "member")
        await self.join(ws, "moderated:x")
        self.broker.drain("roomcast.dead")
        self.broker.publish("room.moderated:x", json.dumps("buy spam"))  # a banned word
        self.broker.publish("room.moderated:x", json.dumps("hello"))
        self.assertEqual((await expect(ws, "message"))["data"], "hello")
        self.assertEqual(self.broker.wait_depth("roomcast.dead", 1), 1)
        [(props, body)] = self.broker.drain("roomcast.dead")
        self.assertEqual(body, b'"buy spam"')
        self.assertTrue(props.headers["x-roomcast-reason"].startswith("refused: forbidden: "),
                        props.headers["x-roomcast-reason"])
        self.assertEqual(self.broker.wait_depth("roomcast.inbound", 0), 0)
        self.assertNotIn("requeued", node.log())

    async def test_a_message_id_that_is_not_utf8_is_dead_lettered_and_the_next_arrives(self):
        c = self.cluster(1)
        self.broker.drain("roomcast.dead")
        ws = await self.client(c.nodes[0], "mid-user")
        # A valid shortstr for AMQP, but no JSON string can carry it.
        self.broker.publish("user.mid-user", '"bad id"', message_id=b"\xff\xfe")
        self.broker.publish("user.mid-user", '"good id"', message_id="m-2")
        self.assertEqual(self.broker.wait_depth("roomcast.dead", 1), 1)
        [(props, body)] = self.broker.drain("roomcast.dead")
        self.assertEqual(body, b'"bad id"')
        self.assertEqual(props.headers["x-roomcast-reason"], "message_id is not UTF-8")
        frame = await expect(ws, "private")
        self.assertEqual((frame["id"], frame["data"]), ("m-2", "good id"))
        await expect_silence(ws, 0.5)
        self.assertEqual(self.broker.wait_depth("roomcast.inbound", 0), 0)

    async def test_an_empty_or_non_string_from_header_is_dead_lettered(self):
        c = self.cluster(1)
        self.broker.drain("roomcast.dead")
        ws = await self.client(c.nodes[0], "from-member")
        await self.join(ws, "from-room")
        odd = ["", 42, {"x": 1}, True, ["a"]]
        for i, sender in enumerate(odd):
            self.broker.publish("room.from-room", json.dumps(i), headers={"from": sender})
        self.broker.publish("room.from-room", '"no header"')
        self.assertEqual(self.broker.wait_depth("roomcast.dead", len(odd)), len(odd))
        dead = self.broker.drain("roomcast.dead")
        self.assertEqual([body for _, body in dead], [b"0", b"1", b"2", b"3", b"4"])
        reasons = [props.headers["x-roomcast-reason"] for props, _ in dead]
        self.assertIn("1 to 128 characters", reasons[0])
        for reason in reasons[1:]:
            self.assertIn("header 'from' is not a string", reason)
        frame = await expect(ws, "message")
        self.assertEqual((frame["from"], frame["data"]), ("amqp", "no header"))
        await expect_silence(ws, 0.5)

    async def test_room_events_are_published_with_amqp_events(self):
        c = self.cluster(1, "--amqp-events", "true")
        conn = self.broker.connection()
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, "roomcast", "event.room.#")
        ws = await self.client(c.nodes[0], "talker")
        await self.join(ws, "ev-room")
        await send_json(ws, {"type": "publish", "room": "ev-room", "data": {"t": 1}, "id": "p"})
        await expect(ws, "ack")
        body = None
        deadline = time.monotonic() + 5
        while body is None and time.monotonic() < deadline:
            method, props, body = ch.basic_get(q, auto_ack=True)
            if method is None:
                body = None
                await asyncio.sleep(0.05)
        conn.close()
        self.assertIsNotNone(body)
        event = json.loads(body)
        self.assertEqual((event["room"], event["from"], event["seq"], event["data"]),
                         ("ev-room", "talker", 1, {"t": 1}))
        self.assertEqual(method.routing_key, "event.room.ev-room")

    async def test_the_publisher_examples_of_docs_amqp_md_reach_a_room(self):
        c = self.cluster(1)
        ws = await self.client(c.nodes[0], "reader")
        await self.join(ws, "lobby")
        url = self.broker.url
        # 1. amqp-publish (Debian amqp-tools)
        subprocess.run(["amqp-publish", f"--url={url}", "-e", "roomcast", "-r", "room.lobby",
                        "-p", "-C", "application/json", "-H", "from: cli",
                        "-b", '{"text":"hi from the shell"}'], check=True, timeout=10)
        frame = await expect(ws, "message")
        self.assertEqual((frame["from"], frame["data"]), ("cli", {"text": "hi from the shell"}))
        # 2. pika, as in docs/amqp.md
        import pika
        conn = pika.BlockingConnection(pika.URLParameters(url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("roomcast", "room.lobby", json.dumps({"text": "hi from python"}),
                         pika.BasicProperties(delivery_mode=2, headers={"from": "py"},
                                              content_type="application/json"))
        conn.close()
        frame = await expect(ws, "message")
        self.assertEqual((frame["from"], frame["data"]), ("py", {"text": "hi from python"}))
        # 3. examples/amqp_publisher.cpp
        example = os.path.join(os.path.dirname(harness.resolve_binary()), "examples",
                               "amqp_publisher")
        if not os.access(example, os.X_OK):
            self.skipTest(f"{example} not built")
        out = subprocess.run([example, url, "room.lobby", '{"text":"hi from C++"}', "cpp"],
                             check=True, timeout=10, capture_output=True, text=True)
        self.assertIn("published", out.stdout)
        frame = await expect(ws, "message")
        self.assertEqual((frame["from"], frame["data"]), ("cpp", {"text": "hi from C++"}))


class AmqpDurableTest(BrokerTestCase):

    async def test_stored_messages_over_the_queue_limit_reach_a_reader(self):
        # 100 messages of 60 KB are one fetch, and more than the 1 MiB queue
        # limit here. Before, the fetch was queued at once: every connection
        # was closed 1008 slow_consumer and the messages went back to the
        # broker, so the user could never read them.
        c = self.cluster(1, "--max-queue-bytes", "1048576")
        node = c.nodes[0]
        user = "big-inbox"
        blob = "b" * 60000
        for i in range(100):
            self.assertEqual(node.publish_api({"user": user, "data": [i, blob]}),
                             (202, {"ok": True}))
        self.assertEqual(self.broker.wait_depth(inbox(user), 100), 100)
        before = node.closes("slow_consumer")
        ws = await self.client(node, user)
        got = [await expect(ws, "private", timeout=10) for _ in range(100)]
        self.assertEqual([f["data"][0] for f in got], list(range(100)))
        self.assertEqual(self.broker.wait_depth(inbox(user), 0), 0)
        self.assertEqual(node.closes("slow_consumer"), before)

    async def test_live_messages_a_slow_consumer_did_not_get_are_stored_for_its_next_connection(self):
        # Queued live private messages dropped with the queue of a reader
        # closed as a slow consumer go to the user's queue, in order.
        c = self.cluster(1, "--max-queue-frames", "4")
        node = c.nodes[0]
        user = "slow-live"
        reader = await node.connect(user=user, max_queue=1, read_limit=16384)
        self.clients.append(reader)
        count = 250  # of 60 KB, ~15 MB: more than the socket buffers hold
        code, reason, first = await privates_to_a_stalled_reader(reader, node, user, count)
        self.assertEqual((code, reason), (1008, "slow_consumer"))
        left = count - len(first)
        self.assertGreater(left, 0)
        self.assertEqual(self.broker.wait_depth(inbox(user), left), left)
        ws = await self.client(node, user)
        got = [await expect(ws, "private", timeout=10) for _ in range(left)]
        self.assertEqual(first + [f["data"][0] for f in got], list(range(count)))
        self.assertEqual(len({f["id"] for f in got}), left)
        self.assertEqual(self.broker.wait_depth(inbox(user), 0), 0)

    async def test_100_offline_messages_from_websocket_and_amqp_arrive_in_order_once(self):
        c = self.cluster()
        user = "offline-100"
        sender = await self.client(c.nodes[0], "sender100")
        n = 0
        for block in range(4):
            for _ in range(25):
                if block % 2 == 0:
                    await send_json(sender, {"type": "send", "to": user, "data": n, "id": n})
                    ack = await expect(sender, "ack")
                    self.assertEqual(ack["id"], n)
                else:
                    # One at a time, interleaved with the WebSocket sends.
                    self.broker.publish(f"user.{user}", json.dumps(n))
                    self.assertEqual(self.broker.wait_depth(inbox(user), n + 1), n + 1)
                n += 1
        self.assertEqual(self.broker.queue_depth(inbox(user)), 100)
        ws = await self.client(c.nodes[2], user)
        got = [await expect(ws, "private") for _ in range(100)]
        self.assertEqual([f["data"] for f in got], list(range(100)))
        self.assertEqual(len({f["id"] for f in got}), 100)
        await expect_silence(ws, 0.5)
        self.assertEqual(self.broker.wait_depth(inbox(user), 0), 0)
        # Removed only once written: a second connection gets nothing old.
        again = await self.client(c.nodes[1], user)
        await expect_silence(again, 0.5)

    async def test_a_deleted_user_queue_is_declared_again_on_the_next_store(self):
        node = self.cluster(1).nodes[0]
        sender = await self.client(node, "queue-sender")
        user = "queue-deleted"
        await send_json(sender, {"type": "send", "to": user, "data": "first", "id": 1})
        await expect(sender, "ack")
        self.assertEqual(self.broker.queue_depth(inbox(user)), 1)
        self.broker.delete(queue=inbox(user))  # "first" goes with it
        await send_json(sender, {"type": "send", "to": user, "data": "second", "id": 2})
        self.assertEqual(await expect(sender, "ack"), {"type": "ack", "id": 2})
        self.assertEqual(self.broker.queue_depth(inbox(user)), 1)
        ws = await self.client(node, user)
        self.assertEqual((await expect(ws, "private"))["data"], "second")
        self.assertIn(f"queue '{inbox(user)}' refused a message", node.log())

    async def test_kill_9_of_the_users_node_mid_drain_loses_nothing(self):
        c = self.cluster()
        names = [n.node for n in c.nodes]
        user = next(f"drain-{i}" for i in range(1000)
                    if owner_of(f"drain-{i}", names) == names[0])
        pad = "x" * 8000  # 1000 x 8 KB: more than the socket buffers hold
        bodies = [json.dumps({"n": i, "pad": pad}) for i in range(1000)]
        self.broker.publish(f"user.{user}", bodies)
        self.assertEqual(self.broker.wait_depth(inbox(user), 1000, timeout=30), 1000)
        # Connected to a node that is not the user's owner, read part, then kill it.
        victim = c.nodes[1]
        ws = await victim.connect(user=user)
        seen = {}
        for _ in range(150):
            f = await expect(ws, "private")
            seen.setdefault(f["data"]["n"], set()).add(f["id"])
        victim.kill()
        # What the node wrote before it died still arrives (and was removed
        # from the broker as written): read it up to the end of the stream.
        with contextlib.suppress(websockets.exceptions.ConnectionClosed, asyncio.TimeoutError):
            while True:
                f = json.loads(await asyncio.wait_for(ws.recv(), 5))
                seen.setdefault(f["data"]["n"], set()).add(f["id"])
        read_before = len(seen)
        self.assertLess(read_before, 1000, "the node was killed after the drain, not during it")
        c.wait_members(2, nodes=[c.nodes[0], c.nodes[2]])
        ws2 = await self.client(c.nodes[2], user)
        deadline = time.monotonic() + 60
        while len(seen) < 1000 and time.monotonic() < deadline:
            try:
                f = await expect(ws2, "private", timeout=10)
            except asyncio.TimeoutError:
                raise AssertionError(
                    f"{len(seen)} of 1000 seen ({read_before} from the killed node), "
                    f"{self.broker.queue_depth(inbox(user))} ready in the broker")
            seen.setdefault(f["data"]["n"], set()).add(f["id"])
        self.assertEqual(len(seen), 1000)
        # A duplicate is the same message again: same id.
        self.assertTrue(all(len(ids) == 1 for ids in seen.values()))
        self.assertEqual(self.broker.wait_depth(inbox(user), 0), 0)


class AmqpBrokerFailureTest(BrokerTestCase):

    async def test_a_node_without_its_broker_serves_and_says_why_it_is_not_ready(self):
        down = free_port()  # nothing listens there
        with Server("--amqp-url", f"amqp://guest:guest@127.0.0.1:{down}/") as node:
            body = await self.wait_ready(node, False)
            self.assertIn("broker unavailable", body["reason"])
            a = await self.client(node, "lonely-a")
            await self.join(a, "no-broker-room")
            await send_json(a, {"type": "publish", "room": "no-broker-room", "data": 1, "echo": True})
            self.assertEqual((await expect(a, "message"))["data"], 1)
            await send_json(a, {"type": "send", "to": "nobody-online", "data": 1, "id": "s"})
            err = await expect(a, "error")
            self.assertEqual((err["code"], err["id"]), ("unavailable", "s"))

    async def test_broker_restart_under_running_nodes_loses_nothing_confirmed(self):
        c = self.cluster(2)
        user = "survivor"
        sender = await self.client(c.nodes[0], "restart-sender")
        receiver = await self.client(c.nodes[1], "restart-receiver")
        await self.join(sender, "restart-room")
        await self.join(receiver, "restart-room")
        for i in range(10):
            await send_json(sender, {"type": "send", "to": user, "data": i, "id": i})
            await expect(sender, "ack")
        self.broker.stop()
        for node in c.nodes:
            body = await self.wait_ready(node, False)
            self.assertIn("broker unavailable", body["reason"])
        # WebSocket traffic goes on; what needs the broker is refused.
        await send_json(sender, {"type": "publish", "room": "restart-room", "data": "still here"})
        self.assertEqual((await expect(receiver, "message"))["data"], "still here")
        await send_json(sender, {"type": "send", "to": user, "data": "lost?", "id": "x"})
        err = await next_of_type(sender, "error", timeout=15)
        self.assertEqual((err[0]["code"], err[0]["id"]), ("unavailable", "x"))
        # The receiver had nothing stored when the broker went: private
        # messages still reach it live, on a tab opened during the outage too.
        tab = await self.client(c.nodes[0], "restart-receiver")
        await send_json(sender, {"type": "send", "to": "restart-receiver", "data": "live", "id": "l"})
        self.assertEqual((await expect(sender, "ack"))["id"], "l")
        for ws in (receiver, tab):
            self.assertEqual((await expect(ws, "private"))["data"], "live")
        self.broker.start()
        for node in c.nodes:
            await self.wait_ready(node, True)
        # One at a time: each is stored before the next is published.
        for i in range(10, 20):
            self.broker.publish(f"user.{user}", [json.dumps(i)])
            self.assertEqual(self.broker.wait_depth(inbox(user), i + 1), i + 1)
        ws = await self.client(c.nodes[1], user)
        got = [(await expect(ws, "private"))["data"] for _ in range(20)]
        self.assertEqual(got, list(range(20)))
        await expect_silence(ws, 0.5)


class BrokerOverIPv6(unittest.IsolatedAsyncioTestCase):
    """An `--amqp-url` with an IPv6 host in brackets: before, the host was
    given to rabbitmq-c with its brackets and the node never connected."""

    async def test_a_bracketed_ipv6_broker_keeps_an_offline_message(self):
        if not harness.has_ipv6_loopback():
            self.skipTest("no IPv6 loopback here")
        b = Broker(listen="::").start()
        self.addCleanup(b.cleanup)
        server = Server("--amqp-url", f"amqp://guest:guest@[::1]:{b.port}/%2f").start()
        self.addCleanup(server.stop)
        server.wait_log("amqp inbox: connected", timeout=15)
        sender = await server.connect("v6-sender")
        await send_json(sender, {"type": "send", "to": "v6-offline", "data": "kept", "id": 1})
        self.assertEqual((await expect(sender, "ack"))["id"], 1)
        await sender.close()
        self.assertEqual(b.queue_depth(inbox("v6-offline")), 1)
        reader = await server.connect("v6-offline")
        self.assertEqual((await next_of_type(reader, "private"))[0]["data"], "kept")
        await reader.close()


if __name__ == "__main__":
    harness.main()
