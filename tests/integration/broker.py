"""A private RabbitMQ broker for the AMQP integration tests.

Runs ``/usr/lib/rabbitmq/bin/rabbitmq-server`` directly (not the /usr/sbin
wrapper, which switches to the system broker's user and data) on free
loopback ports, with its own node name, Erlang cookie, data and log
directories, so it never touches a broker the machine may already run. It
is stopped by its own pid file (``rabbitmqctl stop PIDFILE``) and, as a last
resort, by the PID of the process this helper started.

Also holds small ``pika`` helpers (Debian's python3-pika) to publish and to
read queues.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pika

from harness import free_port, free_ports  # noqa: F401 (test_amqp imports free_port from here)

HOST = "127.0.0.1"
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


class Broker:
    """One rabbitmq-server process with a data directory of its own."""

    def __init__(self, listen=HOST):
        """`listen`: the address the AMQP port binds ("::" for IPv6 and IPv4)."""
        self.dir = tempfile.mkdtemp(prefix="rc-amqp-")
        self.port, self.dist_port, self.epmd_port = free_ports(3)
        self.name = f"rc-it-{os.getpid()}-{self.port}@localhost"
        self.proc = None
        plugins = os.path.join(self.dir, "enabled_plugins")
        with open(plugins, "w") as f:
            f.write("[].\n")
        home = os.path.join(self.dir, "home")
        os.makedirs(home)
        self.env = dict(os.environ)
        self.env.update({
            "HOME": home,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": listen,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": HOST,
            "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": plugins,
            "RABBITMQ_PID_FILE": os.path.join(self.dir, "rabbit.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq"),
        })

    @property
    def url(self):
        return f"amqp://guest:guest@{HOST}:{self.port}/%2f"

    def start(self, timeout=90):
        self.log = open(os.path.join(self.dir, "server.out"), "ab")
        self.proc = subprocess.Popen([SERVER], env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited with {self.proc.returncode}:\n"
                                   + self.output())
            try:
                conn = self.connection()
                conn.close()
                return self
            except Exception:
                time.sleep(0.3)
        self.kill()
        raise RuntimeError("rabbitmq-server did not accept AMQP connections in time:\n"
                           + self.output())

    def output(self):
        try:
            with open(os.path.join(self.dir, "server.out"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-3000:]
        except OSError:
            return ""

    def stop(self, timeout=60):
        """Graceful stop; waits until the VM has exited."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pidfile = self.env["RABBITMQ_PID_FILE"]
        try:
            subprocess.run([CTL, "-n", self.name, "stop", pidfile], env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._stop_epmd()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._stop_epmd()

    def _stop_epmd(self):
        # epmd was started for our private port by this broker; stop just that one.
        subprocess.run(["epmd", "-port", str(self.epmd_port), "-kill"], env=self.env,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10)

    def cleanup(self):
        self.stop()
        if hasattr(self, "log"):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- clients ------------------------------------------------------------------

    def connection(self):
        params = pika.ConnectionParameters(host=HOST, port=self.port,
                                           credentials=pika.PlainCredentials("guest", "guest"),
                                           connection_attempts=1, socket_timeout=5,
                                           blocked_connection_timeout=10)
        return pika.BlockingConnection(params)

    def publish(self, routing_key, body, exchange="roomcast", headers=None, confirm=True,
                message_id=None):
        """Publishes persistent messages (one body or a list) with publisher confirms."""
        bodies = body if isinstance(body, list) else [body]
        conn = self.connection()
        try:
            ch = conn.channel()
            if confirm:
                ch.confirm_delivery()
            for b in bodies:
                ch.basic_publish(exchange, routing_key,
                                 b.encode() if isinstance(b, str) else b,
                                 pika.BasicProperties(delivery_mode=2, headers=headers,
                                                      content_type="application/json",
                                                      message_id=message_id),
                                 mandatory=True)
        finally:
            conn.close()

    def ctl(self, *args, timeout=60):
        """rabbitmqctl against this broker: its output lines, split at tabs."""
        out = subprocess.run([CTL, "-n", self.name, "-q", "--no-table-headers", *args],
                             env=self.env, stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=timeout, check=True).stdout
        return [line.split("\t") for line in out.splitlines() if line.strip()]

    def active_consumer_port(self, queue):
        """The client's TCP port of the connection whose consumer is the single
        active one on `queue`, or None while there is none."""
        active = {pid for q, pid, on in self.ctl("list_consumers", "queue_name", "channel_pid",
                                                 "active") if q == queue and on == "true"}
        for pid, name in self.ctl("list_channels", "pid", "name"):
            if pid in active:  # name: "127.0.0.1:PORT -> 127.0.0.1:5672 (N)"
                return int(name.split(" ")[0].rsplit(":", 1)[1])
        return None

    def queue_depth(self, queue):
        """Ready messages in `queue`, or None when it does not exist."""
        conn = self.connection()
        try:
            ch = conn.channel()
            try:
                return ch.queue_declare(queue, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker:
                return None
        finally:
            try:
                conn.close()
            except Exception:
                pass

    def delete(self, queue=None, exchange=None):
        """Deletes a queue or an exchange, as an operator would."""
        conn = self.connection()
        try:
            ch = conn.channel()
            if queue:
                ch.queue_delete(queue)
            if exchange:
                ch.exchange_delete(exchange)
        finally:
            conn.close()

    def drain(self, queue, limit=1000):
        """Takes (and acks) every message of `queue`: [(properties, body)]."""
        out = []
        conn = self.connection()
        try:
            ch = conn.channel()
            for _ in range(limit):
                method, props, body = ch.basic_get(queue, auto_ack=True)
                if method is None:
                    break
                out.append((props, body))
        finally:
            conn.close()
        return out

    def wait_depth(self, queue, expected, timeout=20):
        deadline = time.monotonic() + timeout
        depth = None
        while time.monotonic() < deadline:
            depth = self.queue_depth(queue)
            if depth == expected:
                return depth
            time.sleep(0.2)
        return depth


class ClassBroker:
    """TestCase mixin: one private broker for the whole class, `cls.broker`."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.broker = Broker().start()

    @classmethod
    def tearDownClass(cls):
        cls.broker.cleanup()
        super().tearDownClass()
