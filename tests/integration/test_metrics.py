"""/metrics on a fresh node: a known sequence of actions, then the exact
values of every counter and gauge it should have moved."""

import asyncio
import unittest

import harness
from harness import expect, raw_upgrade, recv_json, request, send_json

ALL_REASONS = ("client_closed", "shutdown", "binary_frame", "invalid_utf8", "protocol_error",
               "too_large", "slow_consumer", "auth_expired", "ping_timeout", "network_error",
               "server_error", "node_full")
ALL_CODES = ("bad_json", "bad_request", "unknown_type", "bad_name", "not_member", "forbidden",
             "rate_limited", "unavailable", "internal")


class MetricsTest(unittest.IsolatedAsyncioTestCase):

    def setUp(self):
        self.server = harness.Server("--room-idle-timeout", "500ms").start()

    def tearDown(self):
        self.assertEqual(self.server.stop(), 0)

    def m(self, name, **labels):
        return self.server.metric(name, **labels)

    def assertMetrics(self, expected):
        samples = self.server.metrics()
        for (name, labels), value in expected.items():
            key = (name, frozenset(labels))
            self.assertIn(key, samples, name)
            self.assertEqual(samples[key], value, f"{name}{dict(labels)}")

    async def wait_for(self, name, value, **labels):
        got = await self.server.await_metric(name, value, timeout=5, **labels)
        self.assertEqual(got, value, f"{name}{labels}")

    async def test_known_sequence(self):
        s = self.server
        # A fresh node: everything at zero.
        zero = {("roomcast_connections", ()): 0, ("roomcast_rooms", ()): 0,
                ("roomcast_users", ()): 0, ("roomcast_frames_received_total", ()): 0,
                ("roomcast_messages_delivered_total", ()): 0,
                ("roomcast_upgrades_refused_total", ()): 0,
                ("roomcast_delayed_writes_total", ()): 0,
                ("roomcast_socket_writes_total", ()): 0,
                ("roomcast_connection_duration_seconds_count", ()): 0,
                ("roomcast_fanout_latency_seconds_count", ()): 0,
                ("roomcast_cluster_members", ()): 1}  # a single node: itself
        zero.update({("roomcast_closes_total", (("reason", r),)): 0 for r in ALL_REASONS})
        zero.update({("roomcast_errors_total", (("code", c),)): 0 for c in ALL_CODES})
        self.assertMetrics(zero)
        # The node's own actors (directories, router, broadcaster, ...).
        own_actors = self.m("roomcast_actors")
        self.assertGreater(own_actors, 0)

        room = "metrics-room"
        a = await s.connect("ma")
        b = await s.connect("mb")
        c = await s.connect("mc")
        d1 = await s.connect("md")   # one user, two connections
        d2 = await s.connect("md")
        clients = [a, b, c, d1, d2]
        try:
            await self.wait_for("roomcast_connections", 5)
            await self.wait_for("roomcast_users", 4)

            frames = 0
            for ws in (a, b, c):
                await request(ws, {"type": "join", "room": room}, "joined")
                frames += 1
            self.assertEqual(self.m("roomcast_rooms"), 1)
            # An actor per connection (5) and user (4), the room and its relay.
            self.assertEqual(self.m("roomcast_actors"), own_actors + 5 + 4 + 2)

            # 5 publishes from a to a room of 3, without echo: 2 deliveries each.
            n = 5
            for i in range(n):
                await request(a, {"type": "publish", "room": room, "data": i, "id": i}, "ack")
                frames += 1
            for ws in (b, c):
                for i in range(n):
                    self.assertEqual((await expect(ws, "message"))["data"], i)
            # 2 publishes from b with echo: 3 deliveries each.
            for i in range(2):
                await send_json(b, {"type": "publish", "room": room, "data": i, "echo": True})
                frames += 1
            for ws in (a, b, c):
                for i in range(2):
                    await expect(ws, "message")
            # A private message to md (two connections): 2 deliveries.
            await request(a, {"type": "send", "to": "md", "data": "p", "id": "s"}, "ack")
            frames += 1
            for ws in (d1, d2):
                await expect(ws, "private")
            # A broadcast from c reaches all 5 connections: 5 deliveries.
            await send_json(c, {"type": "broadcast", "data": "all"})
            frames += 1
            for ws in clients:
                await expect(ws, "broadcast")
            # An API publish to the room: 3 deliveries, 1 fan-out, no frame received.
            self.assertEqual(s.publish_api({"room": room, "data": "api"})[0], 202)
            for ws in (a, b, c):
                await expect(ws, "message")
            # Errors: 2 not_member, 1 bad_json, 1 unknown_type; pings.
            await request(d1, {"type": "publish", "room": room, "data": 0}, "error")
            await request(d1, {"type": "leave", "room": room}, "error")
            await d1.send("{nope")
            await expect(d1, "error")
            await request(d2, {"type": "what"}, "error")
            await request(d2, {"type": "ping"}, "pong")
            await request(d2, {"type": "ping", "id": 1}, "pong")
            frames += 6
            # An API error counts too, as bad_request.
            self.assertEqual(s.publish_api({"data": 1})[0], 400)
            # A refused upgrade.
            self.assertEqual(raw_upgrade(s.port, "/ws?user=bad%20name")[1].status, 400)

            delivered = n * 2 + 2 * 3 + 2 + 5 + 3
            expected = dict(zero)
            expected.update({
                ("roomcast_connections", ()): 5,
                ("roomcast_rooms", ()): 1,
                ("roomcast_users", ()): 4,
                ("roomcast_frames_received_total", ()): frames,
                ("roomcast_messages_delivered_total", ()): delivered,
                ("roomcast_upgrades_refused_total", ()): 1,
                ("roomcast_fanout_latency_seconds_count", ()): n + 2 + 1,
                ("roomcast_errors_total", (("code", "not_member"),)): 2,
                ("roomcast_errors_total", (("code", "bad_json"),)): 1,
                ("roomcast_errors_total", (("code", "unknown_type"),)): 1,
                ("roomcast_errors_total", (("code", "bad_request"),)): 1,
            })
            self.assertEqual(frames, 3 + 5 + 2 + 1 + 1 + 6)
            self.assertEqual(delivered, 26)
            del expected[("roomcast_socket_writes_total", ())]  # below
            self.assertMetrics(expected)
            self.assertGreater(self.m("roomcast_fanout_latency_seconds_sum"), 0)
            # Socket writes: at least one per socket (five welcomes), and no
            # more than the frames the five clients were sent (one write may
            # carry several; 43-44 of 46 in three runs). Each I/O thread
            # adds its count after a batch of writes.
            sent_to_clients = (5 + 3 + n + 1 + 4 + 2  # welcomes, joined, acks, the send's ack, errors, pongs
                               + delivered)
            writes = await s.await_metric("roomcast_socket_writes_total", sent_to_clients, timeout=1)
            self.assertGreaterEqual(writes, 5)
            self.assertLessEqual(writes, sent_to_clients)
        finally:
            for ws in clients:
                await asyncio.wait_for(ws.close(), 5)

        # After the clients close: gauges back to zero, 5 client_closed closes,
        # 5 connection durations; the room stops after its idle timeout.
        await self.wait_for("roomcast_connections", 0)
        await self.wait_for("roomcast_users", 0)
        await self.wait_for("roomcast_closes_total", 5, reason="client_closed")
        await self.wait_for("roomcast_rooms", 0)
        # Users idle out like rooms; then only the node's own actors are left.
        await self.wait_for("roomcast_actors", own_actors)
        expected["roomcast_connections", ()] = 0
        expected["roomcast_users", ()] = 0
        expected["roomcast_rooms", ()] = 0
        expected["roomcast_closes_total", (("reason", "client_closed"),)] = 5
        expected["roomcast_connection_duration_seconds_count", ()] = 5
        self.assertMetrics(expected)
        self.assertGreater(self.m("roomcast_connection_duration_seconds_sum"), 0)
        # Every connection lived well under 10 s: all in the le="10" bucket.
        self.assertEqual(self.m("roomcast_connection_duration_seconds_bucket", le="10"), 5)

    async def test_server_close_counted_by_reason(self):
        # A close by the server is counted under its reason only. (`shutdown`
        # closes cannot be read from /metrics: the listener is closed by then;
        # test_lifecycle checks the 1001 frames instead.)
        ws = await self.server.connect("bin")
        await ws.send(b"\x00")
        code, _, _ = await harness.wait_closed(ws)
        self.assertEqual(code, 1003)
        await self.wait_for("roomcast_closes_total", 1, reason="binary_frame")
        await self.wait_for("roomcast_connections", 0)
        self.assertEqual(self.m("roomcast_closes_total", reason="client_closed"), 0)
        self.assertEqual(self.m("roomcast_frames_received_total"), 0)  # binary is not text


if __name__ == "__main__":
    harness.main()
