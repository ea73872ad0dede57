"""Limits and protocol violations: close codes 1003/1007/1009/1008 (slow
consumer, ping timeout), the request rate limit and the per-connection room
limit."""

import asyncio
import json
import os
import socket
import struct
import time
import unittest

import harness
from harness import (RawWebSocket, expect, privates_to_a_stalled_reader, recv_json, request,
                     send_json, wait_closed)


class ViolationsTest(harness.ServerTestCase):
    """Default limits (max-frame-bytes 64 KiB, rate 100/s, burst 200)."""

    server_args = ("--max-rooms-per-connection", "2")

    async def test_binary_frame_closes_1003(self):
        before = self.server.closes("binary_frame")
        ws = await self.client("binary")
        await ws.send(b'{"type":"ping"}')
        code, reason, frames = await wait_closed(ws)
        self.assertEqual((code, reason), (1003, "binary_frame"))
        self.assertEqual(frames, [])
        self.assertEqual(await self.server.await_metric("roomcast_closes_total", before + 1,
                                                        reason="binary_frame"), before + 1)

    def test_invalid_utf8_closes_1007(self):
        before = self.server.closes("invalid_utf8")
        raw = RawWebSocket(self.server.port, "/ws?user=utf8")
        try:
            op, payload = raw.read_frame()
            self.assertEqual(op, RawWebSocket.OP_TEXT)
            self.assertEqual(json.loads(payload)["type"], "welcome")
            # A valid frame first: the connection works.
            raw.send_text(b'{"type":"ping","id":1}')
            op, payload = raw.read_frame()
            self.assertEqual(json.loads(payload), {"type": "pong", "id": 1})
            # Then a text frame whose payload is not UTF-8 (0xff never occurs in UTF-8).
            raw.send_text(b'{"type":"ping","id":"\xff\xfe"}')
            code, reason, frames = raw.read_until_close()
            self.assertEqual(code, 1007)
            self.assertEqual(frames, [])
        finally:
            raw.close()
        self.assertEqual(self.server.wait_metric("roomcast_closes_total", before + 1,
                                                 reason="invalid_utf8"), before + 1)

    def test_truncated_utf8_sequence_closes_1007(self):
        raw = RawWebSocket(self.server.port, "/ws?user=utf8b")
        try:
            raw.read_frame()  # welcome
            # A two-byte sequence cut after its lead byte, then a quote.
            raw.send_text(b'{"type":"ping","id":"\xc3"}')
            code, _, _ = raw.read_until_close()
            self.assertEqual(code, 1007)
        finally:
            raw.close()

    async def test_two_mib_frame_closes_1009(self):
        before = self.server.closes("too_large")
        ws = await self.client("big", max_size=None)
        big = json.dumps({"type": "ping", "data": "x" * (2 * 1024 * 1024)})
        try:
            await asyncio.wait_for(ws.send(big), 10)
        except harness.websockets.exceptions.ConnectionClosed:
            pass  # the server may close while the client is still writing
        code, reason, frames = await wait_closed(ws, timeout=10)
        self.assertEqual(code, 1009)
        self.assertEqual(frames, [])
        self.assertEqual(await self.server.await_metric("roomcast_closes_total", before + 1,
                                                        reason="too_large"), before + 1)

    async def test_frame_at_limit_is_accepted(self):
        ws = await self.client("atlimit")
        prefix = '{"type":"ping","id":"big","pad":"'
        text = prefix + "y" * (65536 - len(prefix) - 2) + '"}'
        self.assertEqual(len(text.encode()), 65536)
        await ws.send(text)
        self.assertEqual(await expect(ws, "pong"), {"type": "pong", "id": "big"})
        await ws.send(text[:-2] + 'y"}')  # one byte over the limit
        code, _, _ = await wait_closed(ws)
        self.assertEqual(code, 1009)

    async def test_rate_limited_burst_keeps_connection(self):
        # 1000 publishes back to back with the default rate (100/s, burst 200):
        # some are refused with rate_limited, each answer names its request,
        # and the connection stays usable.
        room = self.unique("r")
        ws = await self.client("burst")
        other = await self.client("burst-peer")
        await request(ws, {"type": "join", "room": room}, "joined")
        await request(other, {"type": "join", "room": room}, "joined")
        n = 1000
        before = self.server.metric("roomcast_errors_total", code="rate_limited")
        start = time.monotonic()
        for i in range(n):
            await send_json(ws, {"type": "publish", "room": room, "data": i, "id": i})
        acked, limited = [], []
        for _ in range(n):
            frame = await recv_json(ws, timeout=10)
            if frame["type"] == "ack":
                acked.append(frame["id"])
            else:
                self.assertEqual(frame["type"], "error", frame)
                self.assertEqual(frame["code"], "rate_limited", frame)
                limited.append(frame["id"])
        elapsed = time.monotonic() - start
        self.assertEqual(sorted(acked + limited), list(range(n)))
        self.assertGreater(len(limited), 0)
        # The join took one token of the burst of 200: at least the other 199
        # pass; at most 199 + rate * elapsed (+1 for rounding).
        self.assertGreaterEqual(len(acked), 199)
        self.assertLessEqual(len(acked), 199 + 100 * elapsed + 1)
        self.assertEqual(acked[:199], list(range(199)))  # the first 199 fit the burst
        # The peer got exactly the accepted ones, in order, with seq 1..len(acked).
        msgs = [await expect(other, "message", timeout=10) for _ in acked]
        self.assertEqual([m["data"] for m in msgs], acked)
        self.assertEqual([m["seq"] for m in msgs], list(range(1, len(acked) + 1)))
        self.assertEqual(self.server.metric("roomcast_errors_total", code="rate_limited"),
                         before + len(limited))
        # Still open: after a short refill, a ping is answered.
        await asyncio.sleep(0.1)
        self.assertEqual(await request(ws, {"type": "ping", "id": "after"}, "pong"),
                         {"type": "pong", "id": "after"})

    async def test_rate_limited_error_for_bad_request_names_its_id(self):
        ws = await self.client("burst-bad")
        for i in range(300):
            await send_json(ws, {"type": "nope", "id": i})
        codes = {}
        for i in range(300):
            frame = await expect(ws, "error")
            self.assertEqual(frame["id"], i)
            codes[frame["code"]] = codes.get(frame["code"], 0) + 1
        self.assertEqual(set(codes), {"unknown_type", "rate_limited"})
        self.assertGreaterEqual(codes["unknown_type"], 200)

    async def test_max_rooms_per_connection(self):
        ws = await self.client("roomy")
        r = [self.unique("r") for _ in range(3)]
        await request(ws, {"type": "join", "room": r[0]}, "joined")
        await request(ws, {"type": "join", "room": r[1]}, "joined")
        err = await request(ws, {"type": "join", "room": r[2], "id": "third"}, "error")
        self.assertEqual((err["code"], err["id"]), ("forbidden", "third"))
        # Joining a room again is not a new room.
        await request(ws, {"type": "join", "room": r[1]}, "joined")
        # After leaving one, another may be joined.
        await request(ws, {"type": "leave", "room": r[0]}, "left")
        self.assertEqual((await request(ws, {"type": "join", "room": r[2]}, "joined"))["room"], r[2])
        # The limit is per connection.
        ws2 = await self.client("roomy")
        await request(ws2, {"type": "join", "room": r[0]}, "joined")


class FloodTest(harness.ServerTestCase):
    """Default rate limits. The flooded session reads its backlog slowly
    after the client is gone, so this node's stop waits only 1 s for it."""

    server_args = ("--drain-timeout", "1s")

    def test_a_client_far_over_its_limit_is_read_no_faster(self):
        # 200 refusals a second (the burst) are answered at once; past them
        # the node stops reading the client until the second ends. Before, it
        # read, scanned and refused everything a client could send: a whole
        # core for one client sending large frames.
        raw = RawWebSocket(self.server.port, "/ws?user=flood")
        try:
            raw.read_frame()  # welcome
            frame = harness.encode_frame(RawWebSocket.OP_TEXT, b'{"type":"ping","id":1}')
            raw.sock.setblocking(False)
            sent, answered, data = 0, 0, b""
            t_end = time.monotonic() + 2.0
            while time.monotonic() < t_end:
                try:
                    raw.sock.send(frame * 64)
                    sent += 64
                except BlockingIOError:
                    time.sleep(0.001)
                try:
                    data += raw.sock.recv(1 << 20)
                except BlockingIOError:
                    pass
            answered = data.count(b'"type":"pong"') + data.count(b'"rate_limited"')
            # In 2 s at most: the burst of 200 and 100/s of tokens, 200
            # refusals a second, and 32 frames in flight per second held.
            self.assertGreater(sent, 5000)  # it tried hard
            self.assertLess(answered, 1200, f"{answered} answers to {sent} frames")
            self.assertGreater(answered, 300)
        finally:
            raw.close()


class SlowConsumerBytesTest(harness.ServerTestCase):
    """The outgoing byte limit: 256 KiB queued (frame limit out of reach)."""

    server_args = ("--max-queue-bytes", "262144", "--max-queue-frames", "100000",
                   "--rate-limit", "100000", "--rate-burst", "100000")
    payload_bytes = 60000
    publishes = 250  # ~15 MB: far more than the kernel buffers hold

    async def test_slow_consumer_closed_1008(self):
        room = self.unique("r")
        pub = await self.client("fast-pub")
        # A member that stops reading: websockets reads at most one queued
        # message ahead (max_queue=1) and we never call recv() until the end.
        slow = await self.client("slow", max_queue=1, read_limit=16384)
        await request(pub, {"type": "join", "room": room}, "joined")
        await request(slow, {"type": "join", "room": room}, "joined")
        before = self.server.closes("slow_consumer")
        blob = "z" * self.payload_bytes
        # No ids (no acks) except on the last publish: the publisher's own
        # queue stays at one frame, whatever the limits under test.
        for i in range(self.publishes - 1):
            await send_json(pub, {"type": "publish", "room": room, "data": [i, blob]})
        await send_json(pub, {"type": "publish", "room": room, "data": ["last", blob], "id": "last"})
        # The room handles publishes in order: the last ack means every frame
        # has been handed to the slow member.
        ack = await expect(pub, "ack", timeout=30)
        self.assertEqual(ack, {"type": "ack", "id": "last", "seq": self.publishes})
        # Now read: a prefix of the messages, then 1008 slow_consumer.
        code, reason, frames = await wait_closed(slow, timeout=20)
        self.assertEqual((code, reason), (1008, "slow_consumer"))
        seqs = [json.loads(f)["seq"] for f in frames]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        self.assertLess(len(seqs), self.publishes)
        self.assertEqual(await self.server.await_metric("roomcast_closes_total", before + 1,
                                                        reason="slow_consumer"), before + 1)
        # The publisher is unaffected.
        self.assertEqual(await request(pub, {"type": "ping", "id": "ok"}, "pong"),
                         {"type": "pong", "id": "ok"})


    async def test_a_large_inbox_reaches_a_reader_without_a_slow_consumer_close(self):
        # The node's own burst: the waiting messages are far over the queue
        # limit. Before, they were queued all at once, the new connection was
        # closed 1008 and the frames dropped with its queue were lost.
        user = self.unique("inbox")
        blob = "q" * self.payload_bytes
        n = 100  # ~6 MB
        for i in range(n):
            self.assertEqual(self.server.publish_api({"user": user, "data": [i, blob]}),
                             (202, {"ok": True}))
        before = self.server.closes("slow_consumer")
        ws = await self.client(user)
        got = [await expect(ws, "private", timeout=10) for _ in range(n)]
        self.assertEqual([f["data"][0] for f in got], list(range(n)))
        self.assertEqual(await request(ws, {"type": "ping", "id": "after"}, "pong"),
                         {"type": "pong", "id": "after"})
        self.assertEqual(self.server.closes("slow_consumer"), before)

    async def test_private_messages_a_slow_consumer_was_not_sent_wait_for_its_next_connection(self):
        # Live private messages queued for a reader that is closed as a slow
        # consumer go back to the inbox. Before, the frames dropped with its
        # queue were lost: a private message counted as delivered once queued.
        user = self.unique("slowpriv")
        slow = await self.client(user, max_queue=1, read_limit=16384)
        before = self.server.closes("slow_consumer")
        code, reason, first = await privates_to_a_stalled_reader(
            slow, self.server, user, self.publishes, self.payload_bytes)
        self.assertEqual((code, reason), (1008, "slow_consumer"))
        self.assertEqual(self.server.closes("slow_consumer"), before + 1)
        self.assertLess(len(first), self.publishes)
        again = await self.client(user)
        rest = [(await expect(again, "private", timeout=10))["data"][0]
                for _ in range(self.publishes - len(first))]
        # Every message once, in order: what the first connection read, then the rest.
        self.assertEqual(first + rest, list(range(self.publishes)))
        self.assertEqual(await request(again, {"type": "ping", "id": "end"}, "pong"),
                         {"type": "pong", "id": "end"})


class SlowConsumerFramesTest(SlowConsumerBytesTest):
    """The outgoing frame limit: 4 frames queued (byte limit out of reach)."""

    server_args = ("--max-queue-bytes", "1073741824", "--max-queue-frames", "4",
                   "--rate-limit", "100000", "--rate-burst", "100000")


class StalledReaderTest(harness.ServerTestCase):
    """A member that stops reading for good is closed as a slow consumer
    once its queue overflows, within the close timeout (`--handshake-timeout`),
    not only when the write in flight ends, which it never does. Before, it
    stayed open (its frames refused) until a ping timeout a minute later."""

    # The default queue limits (4 MiB): the queue overflows behind a write
    # that the kernel buffers stopped. No write delay, so that no flush at
    # a delay tick finds the overflow first.
    server_args = ("--handshake-timeout", "1s", "--write-delay", "0",
                   "--rate-limit", "100000", "--rate-burst", "100000")

    async def test_a_reader_that_never_reads_is_closed_as_a_slow_consumer(self):
        room = self.unique("stalled")
        pub = await self.client("stall-pub")
        await request(pub, {"type": "join", "room": room}, "joined")
        # A raw socket with a small receive buffer that reads nothing after
        # its `joined`: nothing the server writes ever completes.
        raw = RawWebSocket(self.server.port, "/ws?user=stalled", rcvbuf=4096)
        try:
            self.assertEqual(raw.read_frame()[0], RawWebSocket.OP_TEXT)  # welcome
            raw.send_text(json.dumps({"type": "join", "room": room}))
            self.assertEqual(json.loads(raw.read_frame()[1])["type"], "joined")
            before = self.server.closes("slow_consumer")
            blob = "s" * 60000
            n = 250  # ~15 MB: far more than the kernel buffers and the queue hold
            for i in range(n - 1):
                await send_json(pub, {"type": "publish", "room": room, "data": [i, blob]})
            await send_json(pub, {"type": "publish", "room": room, "data": ["last", blob],
                                  "id": "last"})
            self.assertEqual((await expect(pub, "ack", timeout=30))["seq"], n)
            # The server ends it by itself, within the close timeout of 1 s
            # (waited for up to 10 s on a loaded host).
            closes = await self.server.await_metric("roomcast_closes_total", before + 1,
                                                    timeout=10, reason="slow_consumer")
            self.assertEqual(closes, before + 1)
            self.assertEqual(await self.server.await_metric("roomcast_connections", 1, timeout=5), 1)
        finally:
            raw.close()
        self.assertEqual(await request(pub, {"type": "ping", "id": "ok"}, "pong"),
                         {"type": "pong", "id": "ok"})


class PingFloodTest(harness.ServerTestCase):
    """WebSocket pings from a client that never reads: their pongs count
    against the outgoing queue like any other frame."""

    server_args = ("--max-frame-bytes", "1024", "--max-queue-bytes", "4096",
                   "--max-queue-frames", "16")

    def test_pongs_nobody_reads_close_1008(self):
        before = self.server.closes("slow_consumer")
        raw = RawWebSocket(self.server.port, "/ws?user=pinger", rcvbuf=4096)
        try:
            self.assertEqual(raw.read_frame()[0], RawWebSocket.OP_TEXT)  # welcome
            pings = 20000  # 2.5 MB of pongs: far more than the kernel buffers hold
            for _ in range(pings // 100):
                raw.sock.sendall(harness.encode_frame(RawWebSocket.OP_PING, b"p" * 125) * 100)
            pongs = 0
            while True:
                op, payload = raw.read_frame(timeout=10)
                if op != RawWebSocket.OP_PONG:
                    break
                pongs += 1
            self.assertEqual(op, RawWebSocket.OP_CLOSE)
            self.assertEqual(payload, struct.pack("!H", 1008) + b"slow_consumer")
            self.assertLess(pongs, pings)
        finally:
            raw.close()
        self.assertEqual(self.server.wait_metric("roomcast_closes_total", before + 1,
                                                 reason="slow_consumer"), before + 1)


class QueueAtFrameLimitTest(harness.ServerTestCase):
    """--max-queue-bytes equal to --max-frame-bytes: a message of the largest
    size a client may send is bigger once framed for its members (room,
    sender's name), and still reaches a member with nothing else queued."""

    server_args = ("--max-frame-bytes", "1000", "--max-queue-bytes", "1000")

    async def test_largest_message_reaches_an_idle_member(self):
        room = self.unique("q")
        sender = await self.client("u" * 128)
        member = await self.client("idle")
        for ws in (sender, member):
            await request(ws, {"type": "join", "room": room}, "joined")
        head = json.dumps({"type": "publish", "room": room, "id": 1, "data": ""})[:-2]
        text = head + "x" * (1000 - len(head) - 2) + '"}'
        self.assertEqual(len(text), 1000)
        await sender.send(text)
        self.assertEqual((await expect(sender, "ack"))["seq"], 1)
        msg = await expect(member, "message")
        self.assertEqual((msg["from"], len(msg["data"])), ("u" * 128, 1000 - len(head) - 2))


class PingTimeoutTest(harness.ServerTestCase):
    server_args = ("--ping-interval", "300ms", "--max-missed-pongs", "2",
                   "--handshake-timeout", "1s")

    def test_unanswered_pings_close_1008(self):
        before = self.server.closes("ping_timeout")
        start = time.monotonic()
        raw = RawWebSocket(self.server.port, "/ws?user=mute")
        try:
            op, payload = raw.read_frame()
            self.assertEqual(json.loads(payload)["type"], "welcome")
            # Read (never answering) until the server gives up on us.
            code, reason, frames = raw.read_until_close(timeout=5)
            elapsed = time.monotonic() - start
            self.assertEqual((code, reason), (1008, "ping_timeout"))
            pings = [f for f in frames if f[0] == RawWebSocket.OP_PING]
            self.assertEqual(len(pings), len(frames))
            self.assertGreaterEqual(len(pings), 1)
            # Not before max-missed-pongs intervals have passed, and soon after.
            self.assertGreaterEqual(elapsed, 0.6)
            self.assertLess(elapsed, 3.0)
        finally:
            raw.close()
        # Counted once the closing handshake times out (handshake-timeout 1s).
        self.assertEqual(self.server.wait_metric("roomcast_closes_total", before + 1,
                                                 reason="ping_timeout"), before + 1)

    async def test_answering_client_stays_connected(self):
        # websockets answers pings by itself: 6 intervals later, still open.
        ws = await self.client("talker")
        await asyncio.sleep(1.8)
        self.assertEqual(await request(ws, {"type": "ping", "id": 1}, "pong"),
                         {"type": "pong", "id": 1})
        self.assertEqual(ws.close_code, None)



class PingsBetweenMessagesTest(harness.ServerTestCase):
    """A ping leaves with one direct send while its session writes nothing,
    and through the queue while it does: either way, frames stay whole and in
    order around it."""

    server_args = ("--ping-interval", "20ms", "--max-missed-pongs", "100000",
                   "--rate-limit", "100000", "--rate-burst", "100000")

    async def test_pings_between_room_messages(self):
        room = self.unique("pings")
        count = 3000
        raw = RawWebSocket(self.server.port, "/ws?user=reader")
        try:
            op, payload = raw.read_frame()
            self.assertEqual(json.loads(payload)["type"], "welcome")
            raw.send_text(json.dumps({"type": "join", "room": room, "id": 1}))

            def read_all():
                pings, data = 0, []
                deadline = time.monotonic() + 20
                while len(data) < count and time.monotonic() < deadline:
                    op, payload = raw.read_frame(timeout=max(0.01, deadline - time.monotonic()))
                    if op == RawWebSocket.OP_PING:
                        pings += 1
                        continue
                    self.assertEqual(op, RawWebSocket.OP_TEXT)
                    msg = json.loads(payload)
                    if msg["type"] == "message":
                        data.append(msg["data"])
                return pings, data

            reader = asyncio.ensure_future(asyncio.to_thread(read_all))
            writer = await self.client("writer")
            await request(writer, {"type": "join", "room": room}, "joined")
            # Bursts with pauses: the reader's session is sometimes writing
            # when a ping tick comes, sometimes idle.
            for burst in range(count // 100):
                for i in range(burst * 100, (burst + 1) * 100):
                    await send_json(writer, {"type": "publish", "room": room, "data": i})
                await asyncio.sleep(0.01)
            pings, data = await reader
            self.assertEqual(data, list(range(count)))
            self.assertGreaterEqual(pings, 5)
        finally:
            raw.close()



class OutOfFilesTest(unittest.TestCase):
    """A node out of file descriptors pauses accepting for a moment instead
    of retrying at once: before, a failed accept was retried in a busy loop
    (a whole core, 3.4 million log lines in 3 s) until descriptors freed up."""

    def cpu_seconds(self, pid):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def test_failed_accepts_pause_and_the_node_serves_again(self):
        server = harness.Server(node_name="fds", nofile=64).start()
        self.addCleanup(server.stop)
        socks = []
        try:
            # More idle TCP connections than the node has descriptors left:
            # the kernel completes them all, the node cannot accept the rest.
            for _ in range(100):
                socks.append(socket.create_connection((harness.HOST, server.port), timeout=5))
            server.wait_log("accept failed")
            before = self.cpu_seconds(server.proc.pid)
            time.sleep(2)
            spent = self.cpu_seconds(server.proc.pid) - before
            self.assertLess(spent, 0.5, "the node spins on failed accepts")
            failed = [l for l in server.log().splitlines() if "accept failed" in l]
            self.assertLessEqual(len(failed), 2, failed)
            self.assertIn("pausing 100 ms between tries", failed[0])
        finally:
            for s in socks:
                s.close()
        # Descriptors free again: the waiting connections were served (and
        # closed) and new clients get answers.
        server.wait_log("accepting again after", timeout=10)
        self.assertEqual(server.http("GET", "/healthz")[0], 200)

class OpenFilesLimitTest(unittest.IsolatedAsyncioTestCase):
    """Shells and service managers often start a process with a soft limit
    of 1024 open files under a much higher hard limit; the node raises its
    soft limit to the hard one instead of refusing connections at ~1000."""

    async def test_the_soft_limit_is_raised_to_the_hard_one(self):
        server = harness.Server(node_name="soft", nofile=(256, 4096)).start()
        self.addCleanup(server.stop)
        self.assertIn("open files: raised the limit from 256 to 4096 (the hard limit)", server.log())
        with open(f"/proc/{server.proc.pid}/limits") as f:
            line = next(l for l in f if l.startswith("Max open files"))
        self.assertEqual(line.split()[3:5], ["4096", "4096"])
        # More WebSockets than the soft limit it was started with, all served.
        clients = []
        try:
            for i in range(400):
                clients.append(await server.connect(f"soft{i}"))
            await harness.send_json(clients[-1], {"type": "join", "room": "soft", "id": 1})
            self.assertEqual((await harness.expect(clients[-1], "joined"))["room"], "soft")
            self.assertEqual(server.metric("roomcast_connections"), 400)
            self.assertNotIn("accept failed", server.log())
        finally:
            await harness.close_all(clients)

    def test_a_hard_limit_below_max_connections_is_named(self):
        server = harness.Server("--max-connections", "5000", node_name="hard",
                                nofile=(1024, 2048)).start()
        self.addCleanup(server.stop)
        log = server.log()
        self.assertIn("open files are limited to 2048 (ulimit -n, hard limit 2048): this node "
                      "holds about 1984 connections, fewer than --max-connections 5000", log)
        # Within the limit: nothing said.
        quiet = harness.Server("--max-connections", "1000", node_name="quiet",
                               nofile=(1024, 2048)).start()
        self.addCleanup(quiet.stop)
        self.assertNotIn("open files are limited", quiet.log())


if __name__ == "__main__":
    harness.main()
