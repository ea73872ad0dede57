"""Each example program, started for real and driven by WebSocket clients.

The example binaries live next to roomcastd in the build tree
(build/examples/roomcast-<name>).
"""

import asyncio
import os
import unittest

import harness
from harness import Server, expect, next_of_type, recv_json, send_json


def example(name):
    path = os.path.join(os.path.dirname(harness.resolve_binary()), "examples", f"roomcast-{name}")
    if not os.access(path, os.X_OK):
        raise AssertionError(f"example binary missing: {path} (build the examples target)")
    return path


def example_server(name, *args):
    server = Server(*args, node_name=f"{name}-node")
    server.args[0] = example(name)
    return server


async def answer(ws, timeout=5):
    """The next ack or error, skipping the frames the room sends meanwhile."""
    for _ in range(1000):
        frame = await recv_json(ws, timeout)
        if frame["type"] in ("ack", "error"):
            return frame
    raise AssertionError("no ack or error among 1000 frames")


class ExampleCase(unittest.IsolatedAsyncioTestCase):
    name = None
    args = ()

    @classmethod
    def setUpClass(cls):
        cls.server = example_server(cls.name, *cls.args).start()

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0, cls.server.log()[-2000:]

    async def asyncSetUp(self):
        self.clients = []

    async def asyncTearDown(self):
        for ws in self.clients:
            await asyncio.wait_for(ws.close(), 5)

    async def client(self, user):
        ws = await self.server.connect(user=user)
        self.clients.append(ws)
        return ws

    async def join(self, ws, room):
        await send_json(ws, {"type": "join", "room": room, "id": "j"})
        return await expect(ws, "joined")


class DocExample(ExampleCase):
    """The first C++ block of docs/room-logic.md, built as written."""
    name = "doc-example"

    async def test_loud_rooms_shout_and_refuse_what_is_not_text(self):
        ann = await self.client("ann")
        await self.join(ann, "loud:x")
        await send_json(ann, {"type": "publish", "room": "loud:x", "data": "hello", "echo": True,
                         "id": 1})
        self.assertEqual((await expect(ann, "message"))["data"], "HELLO")
        self.assertEqual(await expect(ann, "ack"), {"type": "ack", "id": 1, "seq": 1})
        await send_json(ann, {"type": "publish", "room": "loud:x", "data": 5, "id": 2})
        self.assertEqual(await expect(ann, "error"), {"type": "error", "id": 2, "code": "bad_request",
                                                      "message": "text only"})
        # Other rooms are plain rooms.
        await self.join(ann, "quiet")
        await send_json(ann, {"type": "publish", "room": "quiet", "data": "hello", "echo": True})
        self.assertEqual((await expect(ann, "message"))["data"], "hello")


class Chat(ExampleCase):
    name = "chat"

    async def test_joiners_get_members_and_history_and_everyone_sees_presence(self):
        alice = await self.client("alice")
        await self.join(alice, "chat:lobby")
        self.assertEqual(await expect(alice, "presence"),
                         {"type": "presence", "room": "chat:lobby", "members": ["alice"]})
        self.assertEqual(await expect(alice, "history"),
                         {"type": "history", "room": "chat:lobby", "messages": []})
        for i in range(3):
            await send_json(alice, {"type": "publish", "room": "chat:lobby", "data": {"text": f"m{i}"},
                               "id": i})
        # Bob joins after the room has all three (an ack carries the room's seq).
        for _ in range(3):
            await next_of_type(alice, "ack")
        bob = await self.client("bob")
        await self.join(bob, "chat:lobby")
        members = await expect(bob, "presence")
        self.assertEqual(sorted(members["members"]), ["alice", "bob"])
        history = await expect(bob, "history")
        self.assertEqual([m["data"]["text"] for m in history["messages"]], ["m0", "m1", "m2"])
        self.assertEqual([m["seq"] for m in history["messages"]], [1, 2, 3])
        self.assertTrue(all(m["from"] == "alice" for m in history["messages"]))
        joined, _ = await next_of_type(alice, "presence")
        self.assertEqual(joined, {"type": "presence", "room": "chat:lobby", "joined": "bob"})
        await send_json(bob, {"type": "leave", "room": "chat:lobby"})
        left, _ = await next_of_type(alice, "presence")
        self.assertEqual(left, {"type": "presence", "room": "chat:lobby", "left": "bob"})

    async def test_history_keeps_the_last_50(self):
        alice = await self.client("writer")
        await self.join(alice, "chat:long")
        for i in range(60):
            await send_json(alice, {"type": "publish", "room": "chat:long", "data": i, "id": i})
        # The reader joins after the room has all 60 (a pong would not say so:
        # the connection answers it while publishes are still on their way).
        for _ in range(60):
            await next_of_type(alice, "ack")
        reader = await self.client("reader")
        await self.join(reader, "chat:long")
        await expect(reader, "presence")
        history = await expect(reader, "history")
        self.assertEqual([m["data"] for m in history["messages"]], list(range(10, 60)))

    async def test_other_rooms_are_plain(self):
        ws = await self.client("plain")
        await self.join(ws, "lobby")
        await send_json(ws, {"type": "ping", "id": 1})
        self.assertEqual((await recv_json(ws))["type"], "pong")


class Game(ExampleCase):
    name = "game"

    async def test_inputs_are_aggregated_and_state_ticks_every_100ms(self):
        p1 = await self.client("p1")
        p2 = await self.client("p2")
        await self.join(p1, "game:1")
        await self.join(p2, "game:1")
        for _ in range(3):
            await send_json(p1, {"type": "publish", "room": "game:1", "data": {"move": [1, 0]}})
        await send_json(p2, {"type": "publish", "room": "game:1", "data": {"move": [0, -5]}})
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        ticks = []
        while loop.time() - t0 < 3:
            frame, skipped = await next_of_type(p2, "state", timeout=2)
            self.assertFalse([f for f in skipped if f["type"] == "message"], "inputs fanned out")
            ticks.append((loop.time(), frame))
            if frame["players"].get("p1") == {"x": 3, "y": 0} and \
                    frame["players"].get("p2") == {"x": 0, "y": -1} and len(ticks) >= 5:
                break
        last = ticks[-1][1]
        self.assertEqual(last["players"], {"p1": {"x": 3, "y": 0}, "p2": {"x": 0, "y": -1}})
        span = ticks[-1][0] - ticks[0][0]
        per_tick = span / (len(ticks) - 1)
        self.assertGreater(per_tick, 0.05)  # about 100 ms, loosely: no timing flake
        self.assertLess(per_tick, 0.5)
        self.assertEqual([t[1]["tick"] for t in ticks],
                         list(range(ticks[0][1]["tick"], ticks[0][1]["tick"] + len(ticks))))

    async def test_bad_input_is_refused(self):
        p = await self.client("p3")
        await self.join(p, "game:2")
        await send_json(p, {"type": "publish", "room": "game:2", "data": "jump", "id": 4})
        err, _ = await next_of_type(p, "error")
        self.assertEqual((err["id"], err["code"]), (4, "bad_request"))
        for i, move in enumerate([[True, 0], ["1", 0], [None, 0], [1], [1, 2, 3]]):
            await send_json(p, {"type": "publish", "room": "game:2", "data": {"move": move}, "id": i})
            err = await answer(p)
            self.assertEqual((err["type"], err["id"], err.get("code")), ("error", i, "bad_request"))

    async def move(self, ws, room, moves):
        for i, move in enumerate(moves):
            await send_json(ws, {"type": "publish", "room": room, "data": {"move": move}, "id": i})
            ack = await answer(ws)
            self.assertEqual((ack["type"], ack["id"]), ("ack", i), move)

    async def position(self, ws, user, want):
        """Waits (up to 2 s) for a state in which `user` is at `want`."""
        for _ in range(20):
            state, _ = await next_of_type(ws, "state", timeout=2)
            if state["players"][user] == want:
                return
        self.assertEqual(state["players"][user], want)

    async def test_any_number_is_clamped_without_wrapping_first(self):
        p = await self.client("p4")
        await self.join(p, "game:clamp")
        # 2^32-1 became -1 and 2^40 became 0 when read as an int first.
        await self.move(p, "game:clamp", [[4294967295, 0], [1099511627776, 0], [-4294967297, 0],
                                         [9223372036854775807, 0], [18446744073709551615, 0],
                                         [0, -9223372036854775808]])
        await self.position(p, "p4", {"x": 3, "y": -1})
        await self.move(p, "game:clamp", [[0.6, -0.4], [-1e300, -2.5]])
        await self.position(p, "p4", {"x": 3, "y": -2})

    async def test_a_service_move_makes_no_player_and_the_tick_stops_with_the_members(self):
        p = await self.client("p5")
        await self.join(p, "game:svc")
        status, body = self.server.publish_api({"room": "game:svc", "data": {"move": [1, 1]}})
        self.assertEqual(status, 202, body)
        await send_json(p, {"type": "ping", "id": "after"})
        await next_of_type(p, "pong")
        for _ in range(3):
            state, _ = await next_of_type(p, "state", timeout=2)
            self.assertEqual(state["players"], {"p5": {"x": 0, "y": 0}})
        last = state["tick"]
        await send_json(p, {"type": "leave", "room": "game:svc"})
        await next_of_type(p, "left")
        await asyncio.sleep(0.6)  # six ticks, were the room still ticking
        q = await self.client("p6")
        await self.join(q, "game:svc")
        state, _ = await next_of_type(q, "state", timeout=2)
        self.assertEqual(state["players"], {"p6": {"x": 0, "y": 0}})
        # The same room ticks on from where it stopped (or a fresh one from 1).
        self.assertLessEqual(state["tick"], last + 3)


class Moderated(ExampleCase):
    name = "moderated"

    async def test_rules_refuse_with_errors_and_good_messages_pass(self):
        a = await self.client("mod-a")
        b = await self.client("mod-b")
        await self.join(a, "moderated:1")
        await self.join(b, "moderated:1")
        await send_json(a, {"type": "publish", "room": "moderated:1", "data": "x" * 201, "id": 1})
        err, _ = await next_of_type(a, "error")
        self.assertEqual((err["id"], err["code"]), (1, "bad_request"))
        await send_json(a, {"type": "publish", "room": "moderated:1",
                       "data": {"text": "buy SPAM now"}, "id": 2})
        err, _ = await next_of_type(a, "error")
        self.assertEqual((err["id"], err["code"]), (2, "forbidden"))
        for i in range(5):
            await send_json(a, {"type": "publish", "room": "moderated:1", "data": f"ok {i}", "id": 10 + i})
            ack, _ = await next_of_type(a, "ack")
            self.assertEqual(ack["id"], 10 + i)
        await send_json(a, {"type": "publish", "room": "moderated:1", "data": "one more", "id": 20})
        err, _ = await next_of_type(a, "error")
        self.assertEqual((err["id"], err["code"]), (20, "rate_limited"))
        got = [(await expect(b, "message"))["data"] for _ in range(5)]
        self.assertEqual(got, [f"ok {i}" for i in range(5)])
        await harness.expect_silence(b, 0.3)

    async def publish_all(self, ws, room, cases):
        """Publishes each case's data; asserts its answer: "ack" or the error code."""
        for i, (data, want) in enumerate(cases):
            await send_json(ws, {"type": "publish", "room": room, "data": data, "id": i})
            got = await answer(ws)
            self.assertEqual((got["id"], got.get("code", got["type"])), (i, want), data)

    async def test_length_counts_characters_not_bytes(self):
        a = await self.client("mod-c")
        await self.join(a, "moderated:2")
        await self.publish_all(a, "moderated:2", [
            ("\u00e9" * 200, "ack"),  # 200 characters, 400 bytes
            ("\u00e9" * 201, "bad_request"),
            ({"text": "\U0001F600" * 200}, "ack"),  # 800 bytes
            ("\U0001F600" * 201, "bad_request")])

    async def test_banned_words_match_whole_words_in_any_case(self):
        a = await self.client("mod-e")
        await self.join(a, "moderated:4")
        await self.publish_all(a, "moderated:4", [
            ("I like scampi", "ack"),
            ({"text": "Darn."}, "forbidden"),
            ("what a SCAM!", "forbidden"),
            ("spam\u00e9 is not spam-free", "forbidden"),
            ("spam\u00e9 and scams, darned", "ack")])

    async def test_leaving_and_rejoining_keeps_the_rate_count(self):
        a = await self.client("mod-d")
        await self.join(a, "moderated:3")
        for i in range(5):
            await send_json(a, {"type": "publish", "room": "moderated:3", "data": f"m{i}", "id": i})
            self.assertEqual((await answer(a))["type"], "ack")
        await send_json(a, {"type": "leave", "room": "moderated:3"})
        await next_of_type(a, "left")
        await self.join(a, "moderated:3")
        await send_json(a, {"type": "publish", "room": "moderated:3", "data": "again", "id": 5})
        err = await answer(a)
        self.assertEqual((err["id"], err.get("code")), (5, "rate_limited"))
        # A second connection of the same user shares the count too.
        tab = await self.client("mod-d")
        await self.join(tab, "moderated:3")
        await send_json(tab, {"type": "publish", "room": "moderated:3", "data": "tab", "id": 6})
        err = await answer(tab)
        self.assertEqual((err["id"], err.get("code")), (6, "rate_limited"))


class ModeratedMove(unittest.IsolatedAsyncioTestCase):
    """The rate counts move with a moderated room (snapshot and restore)."""

    async def test_a_planned_move_keeps_the_rate_count(self):
        from test_cluster import Cluster, free_port, room_owned_by
        cluster = Cluster(1)
        cluster.nodes[0].args[0] = example("moderated")
        cluster.start()
        ws = None
        try:
            room = room_owned_by("n2", ["n1", "n2"], prefix="moderated:mv")
            ws = await cluster.nodes[0].connect(user="mover")
            await send_json(ws, {"type": "join", "room": room, "id": "j"})
            await expect(ws, "joined")
            for i in range(5):
                await send_json(ws, {"type": "publish", "room": room, "data": f"m{i}", "id": i})
                self.assertEqual((await answer(ws))["type"], "ack")
            # n2 joins and owns the room now: it moves there with its state.
            cluster.cluster_ports.append(free_port())
            n2 = cluster._node(1)
            n2.args[0] = example("moderated")
            cluster.nodes.append(n2)
            n2.start()
            cluster.wait_members(2, timeout=20)
            for _ in range(100):  # bounded: until the room lives on n2
                if n2.metric("roomcast_rooms") == 1:
                    break
                await asyncio.sleep(0.05)
            self.assertEqual(n2.metric("roomcast_rooms"), 1)
            await send_json(ws, {"type": "publish", "room": room, "data": "one more", "id": 5})
            err = await answer(ws)
            self.assertEqual((err["id"], err.get("code")), (5, "rate_limited"))
        finally:
            if ws is not None:
                await asyncio.wait_for(ws.close(), 5)
            cluster.stop()


class ChatSplitBrain(unittest.IsolatedAsyncioTestCase):
    """The chat logic across a failover and a healed split (docs/cluster.md):
    a member is never told of its own arrival, and members merged into the
    owner's room are introduced to its logic (presence, history)."""

    async def test_merged_members_meet_the_owners_logic(self):
        import signal
        from test_cluster import Cluster, room_owned_by
        cluster = Cluster(2)
        for node in cluster.nodes:
            node.args[0] = example("chat")
        cluster.start()
        n1, n2 = cluster.nodes
        clients = []
        try:
            room = room_owned_by("n1", ["n1", "n2"], prefix="chat:split")
            alice = await n1.connect(user="alice")
            bob = await n2.connect(user="bob")
            clients += [alice, bob]
            await send_json(alice, {"type": "join", "room": room, "id": "j"})
            await expect(alice, "joined")
            await send_json(bob, {"type": "join", "room": room, "id": "j"})
            await next_of_type(bob, "history")
            # n1 freezes: n2 declares it down and restarts the room for bob.
            os.kill(n1.proc.pid, signal.SIGSTOP)
            try:
                fresh, _ = await next_of_type(bob, "joined", timeout=15)
                after = [await recv_json(bob) for _ in range(2)]
                self.assertEqual([f["type"] for f in after], ["presence", "history"])
                self.assertEqual(after[0]["members"], ["bob"])  # not "joined": "bob"
            finally:
                os.kill(n1.proc.pid, signal.SIGCONT)
            # Healed: n2's room is merged into n1's, which keeps its epoch.
            cluster.wait_members(2, timeout=20)
            merged, skipped = await next_of_type(bob, "joined", timeout=15)
            self.assertNotEqual(merged["epoch"], fresh["epoch"])
            presence = await expect(bob, "presence")
            self.assertEqual(sorted(presence["members"]), ["alice", "bob"])
            await expect(bob, "history")
            # The owner's logic knows bob: alice hears him arrive again, and
            # what he says is in the history a late joiner gets.
            for _ in range(10):
                frame, _ = await next_of_type(alice, "presence", timeout=10)
                if frame.get("joined") == "bob":
                    break
            else:
                self.fail("alice never heard bob arrive")
            await send_json(bob, {"type": "publish", "room": room, "data": {"text": "back"}, "id": 1})
            await next_of_type(bob, "ack")
            carol = await n1.connect(user="carol")
            clients.append(carol)
            await send_json(carol, {"type": "join", "room": room, "id": "j"})
            await expect(carol, "joined")
            members = await expect(carol, "presence")
            self.assertEqual(sorted(members["members"]), ["alice", "bob", "carol"])
            history = await expect(carol, "history")
            self.assertEqual([m["data"] for m in history["messages"]], [{"text": "back"}])
        finally:
            for ws in clients:
                await asyncio.wait_for(ws.close(), 5)
            cluster.stop()


if __name__ == "__main__":
    harness.main()
