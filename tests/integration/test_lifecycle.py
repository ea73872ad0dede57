"""Process lifecycle: graceful stop (1001 to every client, exit 0 within the
drain time), command-line errors (exit 2), and configuration from JSON and
CAF INI files with the precedence file < environment < command line."""

import asyncio
import os
import re
import signal
import socket
import tempfile
import time
import unittest

import harness
from harness import RawWebSocket, expect, request, wait_closed


class GracefulStopTest(unittest.IsolatedAsyncioTestCase):

    async def test_sigterm_closes_clients_1001_and_exits_0(self):
        await self.stop_with(signal.SIGTERM)

    async def test_sighup_stops_the_same_way(self):
        # A hangup (the terminal that started the node went away) would kill
        # the node by default: connections dropped, kept messages lost.
        log = await self.stop_with(signal.SIGHUP)
        self.assertIn("received SIGHUP, draining connections", log)

    async def stop_with(self, sig):
        """Stops a node with clients by `sig`; returns its log."""
        server = harness.Server("--drain-timeout", "5s").start()
        try:
            clients = [await server.connect(f"stop{i}") for i in range(3)]
            await request(clients[0], {"type": "join", "room": "stopping"}, "joined")
            await request(clients[1], {"type": "join", "room": "stopping"}, "joined")
            # A message sent before the stop is delivered before the close.
            await request(clients[0], {"type": "publish", "room": "stopping", "data": "last",
                                       "id": 1}, "ack")
            t0 = time.monotonic()
            os.kill(server.proc.pid, sig)
            results = await asyncio.wait_for(
                asyncio.gather(*(wait_closed(ws, timeout=10) for ws in clients)), 15)
            for i, (code, reason, frames) in enumerate(results):
                self.assertEqual((code, reason), (1001, "shutdown"), f"client {i}")
            self.assertEqual([harness.json.loads(f)["data"] for f in results[1][2]], ["last"])
            rc = await asyncio.get_running_loop().run_in_executor(None, server.proc.wait, 10)
            self.assertEqual(rc, 0)
            self.assertLess(time.monotonic() - t0, 5.0)
            log = server.log()
            self.assertIn("draining connections", log)
            self.assertIn("stopped", log)
            return log
        finally:
            server.stop()

    def test_sigterm_with_unresponsive_client_exits_within_drain_timeout(self):
        # A raw client that never reads nor answers the close: the node still
        # exits 0, bounded by --drain-timeout.
        server = harness.Server("--drain-timeout", "1500ms").start()
        raw = RawWebSocket(server.port, "/ws?user=deaf")
        try:
            t0 = time.monotonic()
            os.kill(server.proc.pid, signal.SIGTERM)
            rc = server.proc.wait(10)
            elapsed = time.monotonic() - t0
            self.assertEqual(rc, 0)
            self.assertLess(elapsed, 1.5 + 2.0)
            # What the client got: welcome, then the 1001 close frame.
            op, payload = raw.read_frame()
            self.assertEqual(harness.json.loads(payload)["type"], "welcome")
            code, reason, _ = raw.read_until_close()
            self.assertEqual((code, reason), (1001, "shutdown"))
        finally:
            raw.close()
            server.stop()

    def test_a_second_signal_ends_the_drain_wait(self):
        # A deaf client would hold the drain for 30 s; the second signal ends it.
        for second in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            server = harness.Server("--drain-timeout", "30s").start()
            raw = RawWebSocket(server.port, "/ws?user=deaf")
            try:
                os.kill(server.proc.pid, signal.SIGTERM)
                server.wait_log("draining connections")
                time.sleep(0.3)
                self.assertIsNone(server.proc.poll(), "the drain did not wait for the client")
                t0 = time.monotonic()
                os.kill(server.proc.pid, second)
                self.assertEqual(server.proc.wait(10), 0)
                self.assertLess(time.monotonic() - t0, 3.0)
                log = server.log()
                name = signal.Signals(second).name
                self.assertIn(f"received {name} again: not waiting for the drain", log)
                self.assertIn("asked to hurry: closing 1 connections without waiting", log)
                self.assertIn("stopped", log)
            finally:
                raw.close()
                server.stop()

    def test_sigterm_sigint_and_sighup_without_clients(self):
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            server = harness.Server().start()
            try:
                t0 = time.monotonic()
                os.kill(server.proc.pid, sig)
                self.assertEqual(server.proc.wait(10), 0)
                self.assertLess(time.monotonic() - t0, 2.0)
            finally:
                server.stop()

    async def test_draining_node_refuses_new_work(self):
        # While a deaf client holds the drain open, the listener is closed
        # (new TCP connections are refused) and requests on an HTTP connection
        # opened before the stop get 503: /healthz, /readyz, upgrades,
        # publishes and the static files; /metrics still answers.
        server = harness.Server("--drain-timeout", "3s").start()
        raw = RawWebSocket(server.port, "/ws?user=holder")
        conn = harness.http.client.HTTPConnection(harness.HOST, server.port, timeout=5)
        try:
            conn.request("GET", "/healthz")
            res = conn.getresponse()
            self.assertEqual((res.status, res.read()), (200, b'{"status":"ok"}'))
            os.kill(server.proc.pid, signal.SIGTERM)
            # Bounded wait until the node has started draining.
            refused = False
            for _ in range(100):
                try:
                    socket_ = harness.socket.create_connection((harness.HOST, server.port), 0.5)
                    socket_.close()
                except OSError:
                    refused = True
                    break
                await asyncio.sleep(0.02)
            self.assertTrue(refused, "the listener still accepts after SIGTERM")
            conn.request("GET", "/healthz")
            res = conn.getresponse()
            self.assertEqual(res.status, 503)
            self.assertEqual(harness.json.loads(res.read()), {"status": "draining"})
            conn.request("GET", "/readyz")
            res = conn.getresponse()
            self.assertEqual(res.status, 503)
            self.assertEqual(harness.json.loads(res.read()), {"ready": False, "reason": "draining"})
            conn.request("POST", "/api/publish", body='{"room":"r","data":1}')
            res = conn.getresponse()
            self.assertEqual(res.status, 503)
            self.assertEqual(harness.json.loads(res.read())["error"]["code"], "unavailable")
            conn.request("GET", "/")
            res = conn.getresponse()
            self.assertEqual(res.status, 503)
            self.assertEqual(harness.json.loads(res.read())["error"]["code"], "unavailable")
            conn.request("GET", "/metrics")
            res = conn.getresponse()
            self.assertEqual(res.status, 200)
            self.assertIn(b"roomcast_connections", res.read())
            conn.request("GET", "/ws?user=late", headers={
                "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
            res = conn.getresponse()
            self.assertEqual(res.status, 503)
            self.assertEqual(harness.json.loads(res.read())["error"]["code"], "unavailable")
            self.assertEqual(await asyncio.get_running_loop().run_in_executor(
                None, server.proc.wait, 10), 0)
        finally:
            conn.close()
            raw.close()
            server.stop()


class CommandLineTest(unittest.TestCase):

    def assertExit2(self, args, env=None, mention=None):
        res = harness.run_roomcastd(args, env=env)
        self.assertEqual(res.returncode, 2, f"{args} {env}: {res.stdout}{res.stderr}")
        self.assertTrue(res.stderr.startswith("roomcastd: error:"), res.stderr)
        if mention:
            self.assertIn(mention, res.stderr)
        return res

    def test_help_and_version(self):
        res = harness.run_roomcastd(["--help"])
        self.assertEqual(res.returncode, 0)
        for opt in ("--http-port", "--bind", "--node-name", "--jwt-secret", "--api-key",
                    "--allowed-origins", "--allow-broadcast", "--room-idle-timeout",
                    "--drain-timeout", "--log-level", "--max-frame-bytes", "--max-queue-frames",
                    "--max-queue-bytes", "--rate-limit", "--rate-burst", "--max-connections",
                    "--handshake-timeout", "--ping-interval", "--max-missed-pongs",
                    "--inbox-limit", "--max-rooms-per-connection", "--config"):
            self.assertIn(opt, res.stdout)
        res = harness.run_roomcastd(["--version"])
        self.assertEqual(res.returncode, 0)
        self.assertIn("roomcastd", res.stdout)

    def test_every_option_is_documented(self):
        # docs/configuration.md is the reference; --help is the truth.
        res = harness.run_roomcastd(["--help"])
        options = set(re.findall(r"^\s+(--[a-z][a-z0-9-]+)", res.stdout, re.M))
        self.assertIn("--write-delay", options)
        docs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                            "configuration.md")
        with open(docs) as f:
            text = f.read()
        missing = sorted(o for o in options if not re.search(f"`{o}[` ]", text))
        self.assertEqual(missing, [], "options missing from docs/configuration.md")

    def test_bad_command_lines_exit_2(self):
        self.assertExit2(["--no-such-option", "1"], mention="no-such-option")
        self.assertExit2(["--rate-limit", "fast"], mention="rate-limit")
        self.assertExit2(["--http-port", "70000"], mention="http-port")
        self.assertExit2(["--max-missed-pongs", "-1"])
        self.assertExit2(["--ping-interval", "soon"], mention="ping-interval")
        self.assertExit2(["--ping-interval", "3000000h", "--http-port", "0", "--bind", "127.0.0.1"],
                         mention="365 days")
        self.assertExit2(["--allow-broadcast", "maybe"], mention="allow-broadcast")
        self.assertExit2(["--log-level", "loud"], mention="log-level")
        self.assertExit2(["--node-name", "bad name"], mention="node-name")
        self.assertExit2(["--max-connections", "0"], mention="max-connections")
        self.assertExit2(["positional"])
        self.assertExit2(["--http-port"], mention="http-port")
        # Checked with the options, not when the listener fails to bind (exit 1).
        self.assertExit2(["--bind", "999.1.1.1", "--http-port", "0"], mention="bind")
        self.assertExit2(["--bind", "localhost", "--http-port", "0"], mention="bind")
        # Once an abort (std::stoul out of range) and a node any client could crash.
        self.assertExit2(["--seeds", "a:99999999999999999999"], mention="seeds")
        self.assertExit2(["--max-frame-bytes", "18446744073709551615",
                          "--max-queue-bytes", "18446744073709551615"], mention="max-frame-bytes")
        self.assertExit2(["--rate-limit", "nan"], mention="rate-limit")
        self.assertExit2(["--jwt-secret", "  "], mention="jwt-secret")
        self.assertExit2(["--config", ""], mention="--config")
        self.assertExit2(["--http-port", "7000", "--cluster-port", "7000"],
                         mention="cluster-port must differ from http-port")

    def test_a_port_in_use_is_named_with_the_reason(self):
        # Before, the cluster port's failure said only CAF's "tcp socket
        # creation failed", whatever the cause.
        with socket.socket() as taken:
            taken.bind((harness.HOST, 0))
            taken.listen()
            port = taken.getsockname()[1]
            for args, what in (
                    (["--http-port", str(port)], f"cannot listen on {harness.HOST}:{port}"),
                    (["--http-port", "0", "--cluster-port", str(port)],
                     f"cannot listen on cluster port {harness.HOST}:{port}")):
                res = harness.run_roomcastd(args + ["--bind", harness.HOST])
                self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
                out = res.stdout + res.stderr
                self.assertIn(f"{what}: Address already in use", out)

    def test_bad_environment_exits_2(self):
        self.assertExit2([], env={"ROOMCAST_NO_SUCH": "1"}, mention="ROOMCAST_NO_SUCH")
        self.assertExit2([], env={"ROOMCAST_RATE_BURST": "lots"}, mention="ROOMCAST_RATE_BURST")


class ConfigFileTest(unittest.IsolatedAsyncioTestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="roomcast-it-")

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    async def welcome_and_room_limit(self, server):
        """The node name from the welcome, and whether a second room is refused."""
        ws = await server.connect("cfg")
        try:
            await request(ws, {"type": "join", "room": "one"}, "joined")
            await harness.send_json(ws, {"type": "join", "room": "two", "id": 2})
            second = await harness.recv_json(ws)
            return ws.welcome["node"], second
        finally:
            await ws.close()

    async def run_node(self, *args, env=None):
        server = harness.Server(*args, env=env, add_node_name=False).start()
        try:
            return server, await self.welcome_and_room_limit(server)
        finally:
            self.assertEqual(server.stop(), 0)

    async def test_json_file(self):
        # http-port 1 in the file is overridden by the command line's --http-port 0.
        path = self.write("rc.json", '{"node-name": "from-json", "http-port": 1,'
                                     ' "allowed-origins": ["http://a", "http://b"],'
                                     ' "limits": {"max-rooms-per-connection": 1,'
                                     ' "ping-interval": "15s"}}')
        server, (node, second) = await self.run_node("--config", path)
        self.assertEqual(node, "from-json")
        self.assertNotEqual(server.port, 1)
        self.assertEqual((second["type"], second["code"], second["id"]), ("error", "forbidden", 2))
        self.assertIn("allowed-origins=http://a,http://b", server.log())
        self.assertIn("ping-interval=15s", server.log())

    async def test_json_file_flat_limits(self):
        path = self.write("flat.json", '{"node-name": "flat-json", "max-rooms-per-connection": 1}')
        _, (node, second) = await self.run_node("--config", path)
        self.assertEqual(node, "flat-json")
        self.assertEqual(second["code"], "forbidden")

    async def test_ini_file(self):
        path = self.write("rc.ini", '[global]\nnode-name="from-ini"\nallow-broadcast=false\n\n'
                                    '[limits]\nmax-rooms-per-connection=1\nping-interval=15s\n')
        server, (node, second) = await self.run_node("--config", path)
        self.assertEqual(node, "from-ini")
        self.assertEqual((second["type"], second["code"]), ("error", "forbidden"))
        self.assertIn("allow-broadcast=false", server.log())
        self.assertIn("ping-interval=15s", server.log())

    async def test_config_from_environment_variable(self):
        path = self.write("env.ini", '[global]\nnode-name="via-env-config"\n')
        _, (node, second) = await self.run_node(env={"ROOMCAST_CONFIG": path})
        self.assertEqual(node, "via-env-config")
        self.assertEqual(second["type"], "joined")  # default room limit

    async def test_precedence_file_env_cli(self):
        path = self.write("p.json", '{"node-name": "from-file",'
                                    ' "limits": {"max-rooms-per-connection": 5}}')
        # env over file
        _, (node, second) = await self.run_node(
            "--config", path,
            env={"ROOMCAST_NODE_NAME": "from-env", "ROOMCAST_MAX_ROOMS_PER_CONNECTION": "1"})
        self.assertEqual(node, "from-env")
        self.assertEqual(second["code"], "forbidden")
        # command line over env (and over the file)
        _, (node, second) = await self.run_node(
            "--config", path, "--node-name", "from-cli", "--max-rooms-per-connection=2",
            env={"ROOMCAST_NODE_NAME": "from-env", "ROOMCAST_MAX_ROOMS_PER_CONNECTION": "1"})
        self.assertEqual(node, "from-cli")
        self.assertEqual(second["type"], "joined")

    def test_bad_files_exit_2(self):
        cases = [
            ("unknown.json", '{"node-name": "x", "no-such-key": 1}', "no-such-key"),
            ("unknown-limit.json", '{"limits": {"bogus": 1}}', "bogus"),
            ("wrong-section.json", '{"limits": {"node-name": "x"}}', "node-name"),
            ("badvalue.json", '{"rate-limit": "fast"}', "rate-limit"),
            ("null-secret.json", '{"jwt-secret": null}', "jwt-secret"),
            ("list-rate.json", '{"limits": {"rate-limit": [1]}}', "rate-limit"),
            ("broken.json", '{"node-name": ', None),
            ("unknown.ini", "[global]\nnode-name=\"x\"\nno-such-key=1\n", "no-such-key"),
            ("wrong-section.ini", "[limits]\nnode-name=\"x\"\n", "node-name"),
            ("unknown-section.ini", "[network]\nbind=\"1.2.3.4\"\n", "network"),
            ("badvalue.ini", "[limits]\nrate-burst=\"lots\"\n", "rate-burst"),
        ]
        for name, text, mention in cases:
            with self.subTest(file=name):
                path = self.write(name, text)
                res = harness.run_roomcastd(["--config", path, "--http-port", "0",
                                             "--bind", "127.0.0.1"])
                self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
                self.assertTrue(res.stderr.startswith("roomcastd: error:"), res.stderr)
                if mention:
                    self.assertIn(mention, res.stderr)
        res = harness.run_roomcastd(["--config", os.path.join(self.tmp.name, "missing.ini")])
        self.assertEqual(res.returncode, 2)
        self.assertIn("missing.ini", res.stderr)
        res = harness.run_roomcastd(["--config", self.tmp.name])
        self.assertEqual(res.returncode, 2)
        self.assertIn("is a directory", res.stderr)


if __name__ == "__main__":
    harness.main()
