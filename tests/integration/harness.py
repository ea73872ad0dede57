"""Shared helpers for the roomcastd integration tests.

Every test file runs as ``/usr/bin/python3 test_x.py --roomcastd PATH`` (or
with ``ROOMCASTD=PATH`` in the environment). Tests start real ``roomcastd``
processes on 127.0.0.1 with ``--http-port 0`` and talk to them with Debian's
``python3-websockets`` (10.x), ``http.client`` and raw sockets.

Nothing here waits without a deadline: every receive, poll and process wait
is bounded in time (and loops in count).
"""

import asyncio
import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import re
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

import websockets
import websockets.exceptions
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from loopback_ports import free_port, free_ports  # noqa: E402  (re-exported to the tests)

ROOMCASTD = None  # set by main() or resolve_binary()

HOST = "127.0.0.1"
START_TIMEOUT = 15.0   # seconds for the process to log its port and answer /healthz
RECV_TIMEOUT = 5.0     # default per-frame receive timeout
LISTEN_RE = re.compile(r"node (\S+) listening on 127\.0\.0\.1:(\d+)")


# -- the binary ----------------------------------------------------------------

def resolve_binary():
    global ROOMCASTD
    if ROOMCASTD is None:
        ROOMCASTD = os.environ.get("ROOMCASTD")
    if not ROOMCASTD:
        raise RuntimeError("give the server binary with --roomcastd PATH or ROOMCASTD=PATH")
    if not os.access(ROOMCASTD, os.X_OK):
        raise RuntimeError(f"roomcastd binary not executable: {ROOMCASTD}")
    return ROOMCASTD


def main():
    """Entry point of every test file: strips ``--roomcastd PATH`` from argv."""
    global ROOMCASTD
    argv = [sys.argv[0]]
    args = sys.argv[1:]
    i = 0
    while i < len(args):
        if args[i] == "--roomcastd" and i + 1 < len(args):
            ROOMCASTD = args[i + 1]
            i += 2
        elif args[i].startswith("--roomcastd="):
            ROOMCASTD = args[i].split("=", 1)[1]
            i += 1
        else:
            argv.append(args[i])
            i += 1
    resolve_binary()
    unittest.main(argv=argv, verbosity=2)


def clean_env(extra=None):
    """The test's environment without any ROOMCAST_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    if extra:
        env.update(extra)
    return env


def http_request(port, method, path, body=None, headers=None, timeout=5.0):
    """One HTTP request to 127.0.0.1:`port` on a fresh connection; returns
    (status, headers dict with lower-case names, body str). A dict or list
    body is sent as JSON."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        hdrs = dict(headers or {})
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=hdrs)
        res = conn.getresponse()
        data = res.read().decode("utf-8", "replace")
        return res.status, {k.lower(): v for k, v in res.getheaders()}, data
    finally:
        conn.close()


def run_roomcastd(args, env=None, timeout=10.0):
    """Runs roomcastd to completion (for option errors, --help); returns CompletedProcess."""
    return subprocess.run([resolve_binary()] + list(args), env=clean_env(env),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


# -- a running server ------------------------------------------------------------

class Server:
    """One roomcastd process started by this test, stopped by its PID only."""

    def __init__(self, *args, env=None, node_name=None, add_node_name=True, nofile=None):
        self.args = [resolve_binary(), "--http-port", "0", "--bind", HOST]
        if add_node_name:
            self.args += ["--node-name", node_name or "it-node"]
        self.args += [str(a) for a in args]
        self.env = clean_env(env)
        self.proc = None
        self.port = None
        self.node = None
        self.lines = []
        self._lines_lock = threading.Lock()
        self._port_found = threading.Event()
        self._reader = None
        self.returncode = None
        # The process's RLIMIT_NOFILE, if given: (soft, hard), or one number
        # for both.
        self.nofile = (nofile, nofile) if isinstance(nofile, int) else nofile

    # -- start/stop -------------------------------------------------------------

    def start(self, timeout=START_TIMEOUT):
        def limit_files():
            resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)

        self.proc = subprocess.Popen(self.args, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, errors="replace",
                                     preexec_fn=limit_files if self.nofile else None)
        # Drain the log continuously so the server never blocks on a full pipe.
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._port_found.is_set():
            if self.proc.poll() is not None:
                raise RuntimeError(f"roomcastd exited with {self.proc.returncode} before "
                                   f"listening:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"roomcastd did not log its port within {timeout}s:\n"
                                   f"{self.log()}")
            self._port_found.wait(0.05)
        while True:
            try:
                status, _, _ = self.http("GET", "/healthz", timeout=1.0)
                if status == 200:
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"roomcastd exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"/healthz did not answer 200 within {timeout}s")
            time.sleep(0.05)

    def _read_log(self):
        for line in self.proc.stdout:
            with self._lines_lock:
                self.lines.append(line.rstrip("\n"))
            if not self._port_found.is_set():
                m = LISTEN_RE.search(line)
                if m:
                    self.node = m.group(1)
                    self.port = int(m.group(2))
                    self._port_found.set()

    def log(self):
        with self._lines_lock:
            return "\n".join(self.lines)

    def wait_log(self, text, timeout=5.0):
        """Waits (bounded) until `text` is in the log; returns the log."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()):
            if time.monotonic() > deadline:
                raise AssertionError(f"'{text}' not logged within {timeout}s:\n{log}")
            time.sleep(0.02)
        return log

    def terminate(self, timeout=15.0):
        """SIGTERM, wait up to `timeout`; returns the exit code (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout)
            return self.returncode
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        """Last resort: SIGKILL our own child by PID."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def stop(self):
        rc = self.terminate()
        if self._reader is not None:
            self._reader.join(2)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- addresses ----------------------------------------------------------------

    def owns_local_port(self, port):
        """Whether one of this process's TCP sockets has local port `port`."""
        inodes = set()
        fd_dir = f"/proc/{self.proc.pid}/fd"
        for fd in os.listdir(fd_dir):
            with contextlib.suppress(OSError):
                link = os.readlink(os.path.join(fd_dir, fd))
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError), open(table) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                        return True
        return False

    def ws_url(self, user=None, token=None, query=None):
        params = {}
        if user is not None:
            params["user"] = user
        if token is not None:
            params["token"] = token
        if query:
            params.update(query)
        qs = ("?" + urllib.parse.urlencode(params)) if params else ""
        return f"ws://{HOST}:{self.port}/ws{qs}"

    # -- HTTP -----------------------------------------------------------------------

    def http(self, method, path, body=None, headers=None, timeout=5.0):
        """One HTTP request on a fresh connection; returns (status, headers dict, body str)."""
        return http_request(self.port, method, path, body, headers, timeout)

    def http_json(self, method, path, body=None, headers=None, timeout=5.0):
        status, hdrs, data = self.http(method, path, body, headers, timeout)
        return status, json.loads(data) if data else None

    def publish_api(self, payload, api_key=None):
        headers = {}
        if api_key is not None:
            headers["Authorization"] = f"apikey {api_key}"
        return self.http_json("POST", "/api/publish", payload, headers)

    def metrics_text(self):
        status, hdrs, data = self.http("GET", "/metrics")
        if status != 200:
            raise AssertionError(f"/metrics answered {status}: {data}")
        return data

    def metrics(self):
        """Parsed exposition: {(sample name, frozenset(labels.items())): value}."""
        return parse_metrics(self.metrics_text())

    def metric(self, name, **labels):
        return self.metrics().get((name, frozenset(labels.items())))

    def closes(self, reason):
        """Connections closed so far for `reason` (roomcast_closes_total)."""
        return self.metric("roomcast_closes_total", reason=reason)

    def wait_metric(self, name, expected, timeout=5.0, **labels):
        """Polls until the sample equals `expected`; returns the last value seen."""
        deadline = time.monotonic() + timeout
        value = None
        while True:
            value = self.metric(name, **labels)
            if value == expected or time.monotonic() > deadline:
                return value
            time.sleep(0.05)

    def wait_ready(self, timeout=10.0, ready=True):
        """Polls /readyz until it answers 200 (`ready`) or anything else (not
        `ready`); returns its JSON body, or fails with the last answer and the
        node's log."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                status, body = self.http_json("GET", "/readyz")
            except OSError as e:
                status, body = None, repr(e)
            if (status == 200) == ready:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"/readyz of {self.node} stayed {status} {body} for {timeout}s "
                                     f"(waited for {'200' if ready else 'not 200'}):\n{self.log()[-3000:]}")
            time.sleep(0.05)

    async def await_metric(self, name, expected, timeout=5.0, **labels):
        """wait_metric for a coroutine: the event loop runs meanwhile (its
        clients keep reading)."""
        return await asyncio.to_thread(self.wait_metric, name, expected, timeout, **labels)

    # -- WebSocket clients --------------------------------------------------------------

    async def connect(self, user=None, token=None, expect_welcome=True, **kwargs):
        """Opens a websockets client; by default reads and checks the welcome frame."""
        ws = await connect(self.ws_url(user=user, token=token), **kwargs)
        if expect_welcome:
            welcome = await recv_json(ws)
            if welcome.get("type") != "welcome":
                await ws.close()
                raise AssertionError(f"first frame is not a welcome: {welcome}")
            ws.welcome = welcome
        return ws


def parse_metrics(text):
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


# -- WebSocket helpers ------------------------------------------------------------------

async def connect(url, **kwargs):
    kwargs.setdefault("compression", None)
    kwargs.setdefault("ping_interval", None)   # the server's pings are answered anyway
    kwargs.setdefault("open_timeout", 5)
    kwargs.setdefault("close_timeout", 5)
    kwargs.setdefault("max_size", 8 * 1024 * 1024)
    return await websockets.connect(url, **kwargs)


def has_ipv6_loopback():
    """Whether ::1 can be bound here (containers may run without IPv6)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


async def close_all(clients, timeout=5):
    """Closes every client, each within `timeout`; one already gone is fine."""
    for ws in clients:
        try:
            await asyncio.wait_for(ws.close(), timeout)
        except Exception:
            pass


async def send_json(ws, obj):
    await ws.send(json.dumps(obj, separators=(",", ":")))


async def recv_json(ws, timeout=RECV_TIMEOUT):
    """The next frame, parsed. Raises asyncio.TimeoutError after `timeout`."""
    raw = await asyncio.wait_for(ws.recv(), timeout)
    if not isinstance(raw, str):
        raise AssertionError(f"expected a text frame, got {type(raw).__name__}")
    return json.loads(raw)


async def expect(ws, type_, timeout=RECV_TIMEOUT):
    """The very next frame, which must have type `type_`."""
    frame = await recv_json(ws, timeout)
    if frame.get("type") != type_:
        raise AssertionError(f"expected a '{type_}' frame, got {frame}")
    return frame


# The id the server gives a private message: `<epoch>-<n>` (docs/protocol.md).
PRIVATE_ID = re.compile(r"[0-9a-z]{10}-[1-9][0-9]*")


def split_private_id(frame):
    """A `private` frame as (the frame without its `id`, the id), asserting the
    server gave it one of its own."""
    frame = dict(frame)
    id_ = frame.pop("id", None)
    if not isinstance(id_, str) or not PRIVATE_ID.fullmatch(id_):
        raise AssertionError(f"expected a private frame with a server id, got {frame} id={id_!r}")
    return frame, id_


async def expect_private(ws, timeout=RECV_TIMEOUT):
    """The very next frame, a `private` one, without its id (see split_private_id)."""
    return split_private_id(await expect(ws, "private", timeout))


async def next_of_type(ws, type_, timeout=RECV_TIMEOUT, max_skip=10000):
    """The next frame of type `type_`, skipping (and returning) others seen before it."""
    deadline = time.monotonic() + timeout
    skipped = []
    for _ in range(max_skip + 1):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        frame = await recv_json(ws, left)
        if frame.get("type") == type_:
            return frame, skipped
        skipped.append(frame)
    raise asyncio.TimeoutError(f"no '{type_}' frame within {timeout}s; skipped {skipped[:5]}")


async def expect_silence(ws, duration=0.3):
    """Asserts that no frame arrives within `duration` seconds."""
    try:
        raw = await asyncio.wait_for(ws.recv(), duration)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"expected no frame, got {raw}")


async def request(ws, obj, type_, timeout=RECV_TIMEOUT):
    """Sends `obj` and returns the next frame, which must have type `type_`."""
    await send_json(ws, obj)
    return await expect(ws, type_, timeout)


async def wait_closed(ws, timeout=RECV_TIMEOUT, max_frames=100000):
    """Reads until the connection closes; returns (code, reason, frames read before)."""
    frames = []
    deadline = time.monotonic() + timeout
    for _ in range(max_frames):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            frames.append(await asyncio.wait_for(ws.recv(), left))
        except websockets.exceptions.ConnectionClosed as e:
            return close_info(e) + (frames,)
    raise AssertionError(f"connection not closed within {timeout}s")


async def privates_to_a_stalled_reader(reader, publisher, user, count, size=60000):
    """Publishes `count` private messages `[i, padding]` of `size` bytes to
    `user` through `publisher`'s HTTP API while `reader` (a connection of
    `user` opened with max_queue=1 and a small read_limit) reads nothing,
    then reads until the server closes it. Returns (code, reason, the `i`
    of each message it read)."""
    pad = "p" * size
    for i in range(count):
        answer = publisher.publish_api({"user": user, "data": [i, pad]})
        if answer != (202, {"ok": True}):
            raise AssertionError(f"publish {i} of {count}: {answer}")
    code, reason, frames = await wait_closed(reader, timeout=30)
    return code, reason, [json.loads(f)["data"][0] for f in frames]

def close_info(exc):
    """(code, reason) the peer sent, from a websockets 10 ConnectionClosed."""
    rcvd = getattr(exc, "rcvd", None)
    if rcvd is not None:
        return rcvd.code, rcvd.reason
    return exc.code, exc.reason


# -- JWT (HS256, stdlib only) ---------------------------------------------------------------

def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_jwt(secret, claims, alg="HS256", header=None):
    hdr = header or {"alg": alg, "typ": "JWT"}
    signing_input = (_b64url(json.dumps(hdr, separators=(",", ":")).encode()) + "."
                     + _b64url(json.dumps(claims, separators=(",", ":")).encode()))
    key = secret.encode() if isinstance(secret, str) else secret
    sig = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64url(sig)


# -- raw sockets: upgrades by hand and hand-built frames ---------------------------------------

class RawHTTPResponse:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


def _recv_until(sock, marker, limit=1 << 20):
    buf = b""
    while marker not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            raise AssertionError("response header too long")
    return buf


def raw_upgrade(port, path="/ws", headers=None, timeout=5.0):
    """Sends a WebSocket upgrade by hand. Returns (socket, RawHTTPResponse, leftover bytes).

    On 101 the socket is an open WebSocket (the caller owns it); otherwise the
    socket is closed after reading the response body.
    """
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.settimeout(timeout)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    buf = _recv_until(sock, b"\r\n\r\n")
    head, _, rest = buf.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    hdrs = {}
    for line in header_lines:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if status == 101:
        expected = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        if hdrs.get("sec-websocket-accept") != expected:
            sock.close()
            raise AssertionError(f"bad Sec-WebSocket-Accept: {hdrs}")
        return sock, RawHTTPResponse(status, hdrs, b""), rest
    length = int(hdrs.get("content-length", "0"))
    deadline = time.monotonic() + timeout
    while len(rest) < length and time.monotonic() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            break
        rest += chunk
    sock.close()
    return None, RawHTTPResponse(status, hdrs, rest[:length].decode("utf-8", "replace")), b""


def encode_frame(opcode, payload, fin=True, mask=True):
    """A client frame (masked by default) with any payload bytes, valid or not."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    mask_bit = 0x80 if mask else 0
    if n < 126:
        header = struct.pack("!BB", first, mask_bit | n)
    elif n < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, n)
    if not mask:
        return header + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return header + key + masked


class RawWebSocket:
    """A minimal blocking WebSocket client on a raw socket: it answers nothing
    by itself (no pongs, no close replies) and reads only when asked."""

    OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 1, 2, 8, 9, 10

    def __init__(self, port, path="/ws", headers=None, timeout=5.0, rcvbuf=None):
        self.sock, self.response, self.buf = raw_upgrade(port, path, headers, timeout)
        if self.sock is None:
            raise AssertionError(f"upgrade refused: {self.response.status} {self.response.body}")
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)

    def send_frame(self, opcode, payload, fin=True):
        self.sock.sendall(encode_frame(opcode, payload, fin))

    def send_text(self, text):
        self.send_frame(self.OP_TEXT, text.encode() if isinstance(text, str) else text)

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("frame not complete in time")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed by the server")
            self.buf += chunk

    def read_frame(self, timeout=RECV_TIMEOUT):
        """(opcode, payload bytes) of the next frame. Raises EOFError at end of stream."""
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        if b1 & 0x80:
            raise AssertionError("server frames must not be masked")
        self._need(pos + n, deadline)
        payload = self.buf[pos:pos + n]
        self.buf = self.buf[pos + n:]
        return b0 & 0x0F, payload

    def read_until_close(self, timeout=RECV_TIMEOUT, max_frames=100000):
        """Reads frames until a close frame; returns (code, reason, [(opcode, payload)...])."""
        deadline = time.monotonic() + timeout
        frames = []
        for _ in range(max_frames):
            op, payload = self.read_frame(max(0.01, deadline - time.monotonic()))
            if op == self.OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return code, payload[2:].decode("utf-8", "replace"), frames
            frames.append((op, payload))
        raise AssertionError("no close frame")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# -- test case bases ----------------------------------------------------------------------

class ServerTestCase(unittest.IsolatedAsyncioTestCase):
    """One roomcastd for the whole class, started with `server_args`."""

    server_args = ()
    server_env = None

    @classmethod
    def setUpClass(cls):
        cls.server = Server(*cls.server_args, env=cls.server_env).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        if rc != 0:
            raise AssertionError(f"roomcastd exited with {rc} on SIGTERM:\n{cls.server.log()[-3000:]}")

    async def asyncSetUp(self):
        self._clients = []

    async def asyncTearDown(self):
        await close_all(self._clients)

    async def client(self, user=None, server=None, **kwargs):
        """A connected client (welcome already read) closed at the end of the test."""
        ws = await (server or self.server).connect(user=user, **kwargs)
        self._clients.append(ws)
        return ws

    def unique(self, prefix):
        """A room/user name unique within this server's lifetime."""
        ServerTestCase._counter = getattr(ServerTestCase, "_counter", 0) + 1
        return f"{prefix}-{self._testMethodName[:40]}-{ServerTestCase._counter}"
