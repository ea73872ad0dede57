"""HTTP endpoints: /healthz, /readyz, /metrics, POST /api/publish (rooms,
users, broadcast, errors, API key), 404/405/413."""

import asyncio
import json
import os
import socket
import tempfile
import time
import unittest

import harness
from harness import expect, expect_private, recv_json, request, send_json


def error_code(test, status_body, status):
    got_status, body = status_body
    test.assertEqual(got_status, status, body)
    test.assertEqual(set(body), {"error"})
    test.assertEqual(set(body["error"]), {"code", "message"})
    test.assertTrue(body["error"]["message"])
    return body["error"]["code"]


def raw_exchange(port, data, timeout=5.0):
    """Sends `data` as is, reads until the server closes: (status, headers, JSON body)."""
    with socket.create_connection((harness.HOST, port), timeout=timeout) as sock:
        sock.sendall(data)
        buf = b""
        while chunk := sock.recv(65536):
            buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


class EndpointsTest(harness.ServerTestCase):
    server_args = ("--max-frame-bytes", "4096", "--max-queue-bytes", "65536",
                   "--inbox-limit", "2")

    def test_healthz(self):
        status, headers, body = self.server.http("GET", "/healthz")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("application/json"))
        self.assertEqual(json.loads(body), {"status": "ok"})
        status, _, body = self.server.http("HEAD", "/healthz")
        self.assertEqual((status, body), (200, ""))
        self.assertEqual(error_code(self, self.server.http_json("POST", "/healthz", {}), 405),
                         "method_not_allowed")

    def test_readyz(self):
        self.assertEqual(self.server.http_json("GET", "/readyz"), (200, {"ready": True}))
        self.assertEqual(error_code(self, self.server.http_json("DELETE", "/readyz"), 405),
                         "method_not_allowed")

    def test_metrics_exposition(self):
        status, headers, body = self.server.http("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain"), headers)
        families = {f.name: f for f in harness.text_string_to_metric_families(body)}
        expected = {
            "roomcast_connections": "gauge", "roomcast_rooms": "gauge", "roomcast_users": "gauge",
            "roomcast_frames_received": "counter", "roomcast_messages_delivered": "counter",
            "roomcast_upgrades_refused": "counter", "roomcast_closes": "counter",
            "roomcast_errors": "counter", "roomcast_connection_duration_seconds": "histogram",
            "roomcast_fanout_latency_seconds": "histogram", "roomcast_inbox_bytes": "gauge",
        }
        for name, kind in expected.items():
            self.assertIn(name, families)
            self.assertEqual(families[name].type, kind, name)
        reasons = {s.labels["reason"] for s in families["roomcast_closes"].samples}
        self.assertEqual(reasons, {"client_closed", "shutdown", "binary_frame", "invalid_utf8",
                                   "protocol_error", "too_large", "slow_consumer", "auth_expired", "ping_timeout",
                                   "network_error", "server_error", "node_full"})
        codes = {s.labels["code"] for s in families["roomcast_errors"].samples}
        self.assertEqual(codes, {"bad_json", "bad_request", "unknown_type", "bad_name",
                                 "not_member", "forbidden", "rate_limited", "unavailable",
                                 "internal"})
        # Histograms: cumulative buckets ending in +Inf == _count.
        for name in ("roomcast_connection_duration_seconds", "roomcast_fanout_latency_seconds"):
            buckets = [s for s in families[name].samples if s.name == name + "_bucket"]
            values = [s.value for s in buckets]
            self.assertEqual(values, sorted(values))
            self.assertEqual(buckets[-1].labels["le"], "+Inf")
            count = [s for s in families[name].samples if s.name == name + "_count"][0]
            self.assertEqual(buckets[-1].value, count.value)
        self.assertEqual(error_code(self, self.server.http_json("POST", "/metrics", {}), 405),
                         "method_not_allowed")

    def test_head_answers_headers_only_and_405_names_the_allowed_methods(self):
        for path in ("/healthz", "/readyz", "/metrics", "/api/cluster"):
            with self.subTest(path=path):
                get_status, get_headers, get_body = self.server.http("GET", path)
                status, headers, body = self.server.http("HEAD", path)
                self.assertEqual((status, body), (get_status, ""))
                self.assertEqual(headers["content-type"], get_headers["content-type"])
                self.assertGreater(int(headers["content-length"]), 0)
        # On one keep-alive connection, answers after a HEAD have their bodies
        # again: a GET, and the 400 for a request that is not HTTP.
        for follow in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                       b"NOT HTTP AT ALL\r\n\r\n"):
            with socket.create_connection((harness.HOST, self.server.port), timeout=5) as sock:
                sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + follow)
                buf = b""
                while chunk := sock.recv(65536):
                    buf += chunk
            self.assertEqual(buf.count(b"HTTP/1.1 "), 2, buf)
            self.assertTrue(buf.endswith(b"}"), buf[-200:])
        for method, path, allow in (("POST", "/healthz", "GET, HEAD"), ("PUT", "/metrics", "GET, HEAD"),
                                    ("GET", "/api/publish", "POST"),
                                    # the static files (the demo page)
                                    ("DELETE", "/", "GET, HEAD"),
                                    ("POST", "/roomcast.js", "GET, HEAD"),
                                    ("POST", "/ws", "GET")):
            with self.subTest(method=method, path=path):
                status, headers, body = self.server.http(method, path)
                self.assertEqual((status, headers.get("allow")), (405, allow))
                self.assertEqual(json.loads(body)["error"]["code"], "method_not_allowed")

    def test_unknown_path_and_method(self):
        for path in ("/nope.html", "/nope", "/api", "/api/publish/x", "/healthz/x"):
            with self.subTest(path=path):
                self.assertEqual(error_code(self, self.server.http_json("GET", path), 404),
                                 "not_found")
        for method in ("GET", "PUT", "DELETE"):
            self.assertEqual(
                error_code(self, self.server.http_json(method, "/api/publish"), 405),
                "method_not_allowed")

    async def test_publish_to_room(self):
        room = self.unique("r")
        a = await self.client("hr1")
        b = await self.client("hr2")
        for ws in (a, b):
            await request(ws, {"type": "join", "room": room}, "joined")
        self.assertEqual(self.server.publish_api({"room": room, "data": {"x": [1, 2]}}),
                         (202, {"ok": True}))
        for ws in (a, b):
            self.assertEqual(await expect(ws, "message"),
                             {"type": "message", "room": room, "from": "api", "seq": 1,
                              "data": {"x": [1, 2]}})
        self.assertEqual(self.server.publish_api({"room": room, "data": "hi", "from": "billing"}),
                         (202, {"ok": True}))
        for ws in (a, b):
            self.assertEqual(await expect(ws, "message"),
                             {"type": "message", "room": room, "from": "billing", "seq": 2,
                              "data": "hi"})
        # A client publish continues the same sequence.
        await send_json(a, {"type": "publish", "room": room, "data": 3})
        self.assertEqual((await expect(b, "message"))["seq"], 3)

    def test_publish_to_empty_room_accepted(self):
        self.assertEqual(self.server.publish_api({"room": self.unique("nobody"), "data": 1}),
                         (202, {"ok": True}))

    async def test_publish_to_user(self):
        user = self.unique("u")
        c1 = await self.client(user)
        c2 = await self.client(user)
        self.assertEqual(self.server.publish_api({"user": user, "data": [True]}), (202, {"ok": True}))
        for ws in (c1, c2):
            self.assertEqual((await expect_private(ws))[0],
                             {"type": "private", "from": "api", "data": [True]})

    async def test_publish_to_offline_user_inbox(self):
        user = self.unique("off")
        for i in range(2):
            self.assertEqual(self.server.publish_api({"user": user, "data": i, "from": "svc"}),
                             (202, {"ok": True}))
        # --inbox-limit 2: the third is refused with 503 unavailable.
        self.assertEqual(error_code(self, self.server.publish_api({"user": user, "data": 2}), 503),
                         "unavailable")
        ws = await self.client(user)
        for i in range(2):
            self.assertEqual((await expect_private(ws))[0],
                             {"type": "private", "from": "svc", "data": i})

    async def test_publish_broadcast(self):
        clients = [await self.client(f"hb{i}") for i in range(3)]
        self.assertEqual(self.server.publish_api({"broadcast": True, "data": {"b": 1}}),
                         (202, {"ok": True}))
        for ws in clients:
            frame, skipped = await harness.next_of_type(ws, "broadcast")
            self.assertEqual(frame, {"type": "broadcast", "from": "api", "data": {"b": 1}})
            self.assertEqual(skipped, [])

    def test_publish_bad_input(self):
        cases = [
            ("not json", "bad_json"),
            ('{"room":"r","data":1', "bad_json"),
            ("[1,2]", "bad_json"),
            ('"str"', "bad_json"),
            ("{}", "bad_request"),
            ({"room": "r"}, "bad_request"),                              # no data
            ({"data": 1}, "bad_request"),                                # no target
            ({"room": "r", "user": "u", "data": 1}, "bad_request"),      # two targets
            ({"room": "r", "broadcast": True, "data": 1}, "bad_request"),
            ({"user": "u", "broadcast": True, "data": 1}, "bad_request"),
            ({"room": 5, "data": 1}, "bad_request"),
            ({"user": None, "data": 1}, "bad_request"),
            ({"broadcast": False, "data": 1}, "bad_request"),
            ({"broadcast": "yes", "data": 1}, "bad_request"),
            ({"room": "bad name", "data": 1}, "bad_name"),
            ({"room": "", "data": 1}, "bad_name"),
            ({"user": "x" * 129, "data": 1}, "bad_name"),
            ({"room": "r", "data": 1, "from": "not valid"}, "bad_name"),
            ({"room": "r", "data": 1, "from": 7}, "bad_request"),      # a type, not a name
            ('{"room":"r","data":1,"room":"s"}', "bad_request"),       # a field twice
            ('{"room":"r","data":' + "[" * 70 + "]" * 70 + "}", "bad_json"),  # too deep
            ('{"room":"r","data":123456789012345678901234567890}', "bad_request"),  # > 64 bits
        ]
        before = self.server.metrics()
        counts = {}
        for body, code in cases:
            with self.subTest(body=str(body)[:50]):
                self.assertEqual(error_code(self, self.server.publish_api(body), 400), code)
                counts[code] = counts.get(code, 0) + 1
        after = self.server.metrics()
        for code, n in counts.items():
            key = ("roomcast_errors_total", frozenset({("code", code)}))
            self.assertEqual(after[key] - before[key], n, code)

    def test_publish_body_too_large_is_413(self):
        # --max-frame-bytes 4096
        body = json.dumps({"room": "r", "data": "x" * 5000})
        status, payload = self.server.http_json("POST", "/api/publish", body)
        self.assertEqual(error_code(self, (status, payload), 413), "too_large")
        # Just under the limit is fine.
        body = json.dumps({"room": "r", "data": "x" * 4000})
        self.assertLessEqual(len(body), 4096)
        self.assertEqual(self.server.http_json("POST", "/api/publish", body), (202, {"ok": True}))


    def test_expect_100_continue_is_answered_before_the_body(self):
        # curl (for large bodies) and PHP send the body only after `100
        # Continue`, or after waiting a second for it: before, every such
        # publish took a second.
        body = json.dumps({"room": "r", "data": "x" * 2000}).encode()
        with socket.create_connection((harness.HOST, self.server.port), timeout=5) as sock:
            sock.sendall(b"POST /api/publish HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
            interim = sock.recv(4096)  # times out (an error) without the 100
            self.assertEqual(interim, b"HTTP/1.1 100 Continue\r\n\r\n")
            sock.sendall(body)
            buf = b""
            while b"\r\n\r\n" not in buf or not buf.endswith(b"}"):
                buf += sock.recv(4096)
        self.assertTrue(buf.startswith(b"HTTP/1.1 202 "), buf)
        # Over the limit: the final answer instead of the 100.
        status, _, payload = raw_exchange(
            self.server.port, b"POST /api/publish HTTP/1.1\r\nHost: x\r\n"
            b"Expect: 100-continue\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n")
        self.assertEqual(error_code(self, (status, payload), 413), "too_large")

    def test_malformed_http_gets_400_and_a_long_header_431(self):
        head = b"POST /api/publish HTTP/1.1\r\nHost: x\r\n"
        for bad in (head + b"Content-Length: abc\r\n\r\n{}",
                    head + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
                    head + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"):
            status, headers, body = raw_exchange(self.server.port, bad)
            self.assertEqual(error_code(self, (status, body), 400), "bad_request", bad)
            self.assertEqual(headers["content-type"], "application/json")
        long = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 20000 + b"\r\n\r\n"
        status, _, body = raw_exchange(self.server.port, long)
        self.assertEqual(error_code(self, (status, body), 431), "too_large")
        # The node goes on serving.
        self.assertEqual(self.server.http("GET", "/healthz")[0], 200)

    def test_upgrades_beast_would_refuse_get_json_and_are_counted(self):
        before = self.server.metric("roomcast_upgrades_refused_total")
        head = (b"GET /ws?user=v HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n")
        status, headers, body = raw_exchange(self.server.port, head + (
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"))
        self.assertEqual(error_code(self, (status, body), 426), "bad_request")
        self.assertEqual(headers["sec-websocket-version"], "13")
        status, _, body = raw_exchange(self.server.port,
                                       head + b"Sec-WebSocket-Version: 13\r\n\r\n")
        self.assertEqual(error_code(self, (status, body), 400), "bad_request")
        self.assertIn("Sec-WebSocket-Key", body["error"]["message"])
        self.assertEqual(self.server.metric("roomcast_upgrades_refused_total"), before + 2)


class ApiKeyTest(harness.ServerTestCase):
    server_args = ("--api-key", "k3y")

    async def test_api_key_required(self):
        room = self.unique("r")
        ws = await self.client("keyed")
        await request(ws, {"type": "join", "room": room}, "joined")
        msg = {"room": room, "data": 1}
        self.assertEqual(error_code(self, self.server.publish_api(msg), 401), "unauthorized")
        self.assertEqual(error_code(self, self.server.publish_api(msg, api_key="wrong"), 401),
                         "unauthorized")
        for header in ("Bearer k3y", "k3y", "apikey k3y2", "apikey", "apikeyk3y", "apikey K3Y"):
            status = self.server.http_json("POST", "/api/publish", msg,
                                           {"Authorization": header})
            self.assertEqual(error_code(self, status, 401), "unauthorized", header)
        await harness.expect_silence(ws, 0.2)  # nothing got through
        self.assertEqual(self.server.publish_api(msg, api_key="k3y"), (202, {"ok": True}))
        self.assertEqual((await expect(ws, "message"))["data"], 1)
        # The scheme is case-insensitive, and one or more spaces follow it (RFC 9110 11.1).
        for n, header in enumerate(("APIKEY k3y", "ApiKey k3y", "apikey  k3y"), start=2):
            status = self.server.http_json("POST", "/api/publish", {"room": room, "data": n},
                                           {"Authorization": header})
            self.assertEqual(status, (202, {"ok": True}), header)
            self.assertEqual((await expect(ws, "message"))["data"], n)
        # Health, readiness and metrics need no key.
        self.assertEqual(self.server.http("GET", "/healthz")[0], 200)
        self.assertEqual(self.server.http("GET", "/readyz")[0], 200)
        self.assertEqual(self.server.http("GET", "/metrics")[0], 200)


class WebRootTest(unittest.TestCase):

    def test_a_web_root_that_is_not_a_directory_is_warned_about_and_answers_404(self):
        with harness.Server("--web-root", "/nonexistent/roomcast-web") as server:
            server.wait_log("web-root '/nonexistent/roomcast-web' is not a directory")
            self.assertEqual(error_code(self, server.http_json("GET", "/"), 404), "not_found")
            self.assertEqual(server.http_json("GET", "/healthz")[0], 200)



class SlowDownloadTest(unittest.TestCase):

    def test_a_large_file_reaches_a_slow_reader_after_the_handshake_time(self):
        # Before, a response had to be written within the handshake timeout
        # counted from the wait for its request: a slow reader of a large
        # file got it cut off.
        with tempfile.TemporaryDirectory(prefix="roomcast-it-") as root:
            size = 4 * 1024 * 1024
            with open(os.path.join(root, "big.bin"), "wb") as f:
                f.write(b"z" * size)
            with harness.Server("--web-root", root, "--handshake-timeout", "1s") as server:
                with socket.socket() as sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                    sock.settimeout(10)
                    sock.connect((harness.HOST, server.port))
                    sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                    buf = b""
                    started = time.monotonic()
                    while chunk := sock.recv(65536):
                        buf += chunk
                        if len(buf) >= size:  # the head comes first, so this is not all yet
                            head, _, body = buf.partition(b"\r\n\r\n")
                            if len(body) >= size:
                                break
                        if time.monotonic() - started < 2.5:
                            time.sleep(0.04)  # about 2.5 s of slow reading
                head, _, body = buf.partition(b"\r\n\r\n")
                self.assertIn(b"200 OK", head.split(b"\r\n")[0])
                self.assertGreater(time.monotonic() - started, 1.5)
                self.assertEqual(len(body), size)


class InboxMemoryTest(harness.ServerTestCase):
    """--inbox-memory bounds the memory inboxes of all users together."""

    server_args = ("--inbox-memory", "1000")

    async def test_offline_messages_to_many_users_stop_at_the_node_limit(self):
        data = "m" * 100
        # Each frame as kept, with its id: the first of its user, `<epoch>-1`.
        size = len(json.dumps({"type": "private", "id": "e" * 10 + "-1", "from": "api",
                               "data": data}, separators=(",", ":")))
        accepted = 0
        for i in range(20):
            status, body = self.server.publish_api({"user": f"mem{i}", "data": data})
            if status != 202:
                self.assertEqual(error_code(self, (status, body), 503), "unavailable")
                self.assertEqual(body["error"]["message"], "this node's inboxes are full")
                break
            accepted += 1
        self.assertEqual(accepted, 1000 // size)  # one user each: --inbox-limit is far
        self.assertEqual(self.server.metric("roomcast_inbox_bytes"), accepted * size)
        # A user who reads gives the memory back, and a new message fits.
        ws = await self.client("mem0")
        self.assertEqual((await expect(ws, "private"))["data"], data)
        self.assertEqual(await self.server.await_metric("roomcast_inbox_bytes",
                                                        (accepted - 1) * size),
                         (accepted - 1) * size)
        self.assertEqual(self.server.publish_api({"user": "mem-new", "data": data}),
                         (202, {"ok": True}))

if __name__ == "__main__":
    harness.main()
