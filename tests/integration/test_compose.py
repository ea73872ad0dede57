"""docker-compose.yml for real: the image built from the Dockerfile by
`docker-compose build`, RabbitMQ, three nodes and nginx started by
`docker-compose up`, driven by `docker-compose kill/stop/start`. There is no
Docker engine here, so scripts/compose-podman serves Docker's API with podman
and stands in for the Docker Hub images with Debian's packages
(tests/containers/README.md).

Covers: test_topology.py's nginx tests (300 clients spread and chatting, an
AMQP publish, a killed node, a rolling restart under traffic) on the
containers; the image's user, health check and demo page; that a node
whose container comes back after another container took its old address is
still reached through nginx (fixed addresses in the compose file); and that
private messages stored for an offline user outlive a RabbitMQ restart
(`docker-compose stop/start rabbitmq`, on a new address); and that nginx
stops gracefully with WebSockets open and starts again while a node is down;
and that the `haproxy` profile serves the same cluster.

Skipped, saying why, where podman cannot run a container at all.
"""

import asyncio
import http.client
import ipaddress
import json
import os
import subprocess
import sys
import time
import unittest

import harness
import test_topology as topology

ROOT = topology.ROOT
SCRIPT = os.path.join(ROOT, "scripts", "compose-podman")
# Its own project (network, volume, container names) per run.
PROJECT = f"roomcast-test-{os.getpid()}"
NODES = topology.NODES
PREPARE_TIMEOUT = 900   # debootstrap, stand-ins and the image: ~4 min on 2 cores
READY_TIMEOUT = 90.0    # RabbitMQ healthy, nodes started and clustered, nginx up
# Where netavark keeps aardvark-dns's per-network files (root podman 4.3:
# fixed, not under RC_PODMAN_DIR).
AARDVARK_DIR = "/run/containers/networks/aardvark-dns"


def _can_run_containers():
    """(True, '') when this machine runs root containers, else (False, why).
    Only the machine can make this False: `check` runs no project file."""
    r = subprocess.run([SCRIPT, "check"], env=harness.clean_env(), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=300)
    if r.returncode == 3:
        return False, r.stderr.strip()[-500:]
    if r.returncode != 0:
        raise RuntimeError(f"scripts/compose-podman check exited {r.returncode}: {r.stderr}")
    return True, ""


CAN_RUN, WHY_NOT = _can_run_containers()


class ComposeRunner(topology.Runner):
    """topology.Runner's verbs (kill, stop, start NODE) on compose services."""

    def __init__(self):
        self.lb = "nginx"
        self.port, self.haproxy_port = harness.free_ports(2)
        # The haproxy profile too: lb-haproxy beside nginx.
        self.env = harness.clean_env({"COMPOSE_PROJECT_NAME": PROJECT, "COMPOSE_PROFILES": "haproxy",
                                      "RC_PORT": str(self.port),
                                      "RC_HAPROXY_PORT": str(self.haproxy_port)})
        self.status = None
        self.started = False
        self.watchdog = None

    # A node that is gone: nginx's connect to a stopped container's address
    # times out (504) rather than being refused (502).
    dead_node_statuses = (502, 504)

    def script(self, *args, timeout=120):
        r = subprocess.run([SCRIPT] + [str(a) for a in args], env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise AssertionError(f"scripts/compose-podman {' '.join(map(str, args))} exited "
                                 f"{r.returncode}:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
        return r.stdout + r.stderr

    def compose(self, *args, timeout=120):
        return self.script("compose", *args, timeout=timeout)

    def podman(self, *args, timeout=60):
        return self.script("podman", *args, timeout=timeout)

    def container(self, service):
        return f"{PROJECT}_{service}_1"

    def inspect(self, service, template):
        return self.podman("inspect", self.container(service), "--format", template).strip()

    def up(self):
        # If this process is killed (CTest's timeout), the watchdog takes
        # the containers down and stops podman's API service.
        self.watchdog = subprocess.Popen([SCRIPT, "watch", str(os.getpid())], env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
        self.script("prepare", timeout=PREPARE_TIMEOUT)
        self.compose("down", "-v", "--remove-orphans")   # leftovers of a killed run
        self.env["RC_NET"] = self.free_net()
        self.started = True
        self.compose("up", "-d", "--no-build", timeout=READY_TIMEOUT + 60)
        self.wait_ready(NODES)
        self.refresh()
        return self

    def free_net(self):
        """A /24 for the compose network (RC_NET) that no host route, no
        other podman network and no aardvark-dns file uses: docker-compose.yml's
        default 172.31.253.0/24 may be taken (another run's bridge), and podman
        then refuses to create the network."""
        used = set()
        routes = json.loads(subprocess.run(["ip", "-j", "route", "show", "table", "all"],
                                           capture_output=True, text=True, check=True).stdout)
        nets = [r.get("dst", "") for r in routes]
        names = self.podman("network", "ls", "--format", "{{.Name}}").split()
        if names:
            for net in json.loads(self.podman("network", "inspect", *names)):
                nets += [s.get("subnet", "") for s in net.get("subnets") or []]
        # aardvark-dns keeps one file per network in a directory shared by
        # every podman on the host, and answers on a gateway address with the
        # records of every file that names it: a file left by a killed run
        # answered "rabbitmq" with its old container's address.
        try:
            for name in os.listdir(AARDVARK_DIR):
                path = os.path.join(AARDVARK_DIR, name)
                if os.path.isfile(path) and not name.startswith("aardvark"):
                    with open(path) as f:
                        gateways = f.readline().strip().split(",")
                    nets += [f"{gw}/24" for gw in gateways if gw]
        except OSError:
            pass   # no aardvark-dns has run on this host
        for dst in nets:
            try:
                used.add(ipaddress.ip_network(dst, strict=False))
            except ValueError:
                pass   # "default", multicast names and the like
        for third in range(253, 99, -1):
            candidate = ipaddress.ip_network(f"172.31.{third}.0/24")
            if not any(candidate.overlaps(u) for u in used if u.version == 4
                       and u.prefixlen > 0):
                return f"172.31.{third}"
        raise AssertionError(f"no free /24 in 172.31.100-253 for the compose network: {nets}")

    def wait_ready(self, nodes):
        """Every node in `nodes` ready through nginx, and clustered with the others."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                if all(self.get(f"/nodes/{n}/readyz")[0] == 200 and
                       self.node_metric(n, "roomcast_cluster_members") == len(NODES)
                       for n in nodes):
                    return
            except (OSError, AssertionError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{nodes} not ready through nginx within {READY_TIMEOUT}s:\n"
                                     + "\n".join(self.logs(n) for n in nodes))
            time.sleep(0.5)

    def post_json(self, path, body):
        """(status, JSON body) of POST path through the load balancer."""
        conn = http.client.HTTPConnection(harness.HOST, self.port, timeout=5)
        try:
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            res = conn.getresponse()
            return res.status, json.loads(res.read() or b"null")
        finally:
            conn.close()

    def address(self, service):
        return self.inspect(service, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")

    def refresh(self):
        ip = self.address("rabbitmq")
        self.status = {"lb": {"port": self.port},
                       "rabbitmq": {"url": f"amqp://roomcast:roomcast@{ip}:5672/roomcast"}}
        return self.status

    def down(self):
        if self.watchdog is not None:
            self.watchdog.terminate()
            self.watchdog.wait(10)
        try:
            if self.started:
                self.compose("down", "-v", timeout=180)
        finally:
            self.script("stop")

    def logs(self, name, lines=40):
        try:
            return self.compose("logs", "--no-color", "--tail", str(lines), name)
        except AssertionError as e:
            return str(e)

    def run(self, verb, node, timeout=90):
        if verb == "kill":
            return self.compose("kill", node)
        if verb == "start":
            out = self.compose("start", node)
            self.wait_ready([node])
            return out
        if verb == "stop":
            t0 = time.monotonic()
            out = self.compose("stop", node, timeout=timeout)
            took = time.monotonic() - t0
            code = self.inspect(node, "{{.State.ExitCode}}")
            # 137: Docker's SIGKILL after stop_grace_period.
            note = "; it did not exit, killing it" if code == "137" else ""
            return f"{out}{node} stopped in {took:.1f}s (exit {code}){note}"
        raise ValueError(verb)


@unittest.skipUnless(CAN_RUN, WHY_NOT)
class ComposeTopology(topology.NginxTopology):
    """test_topology.NginxTopology's tests, in order, on docker-compose.yml."""

    @classmethod
    def setUpClass(cls):
        cls.runner = ComposeRunner()
        try:
            cls.runner.up()
        except Exception:
            cls.runner.down()
            raise

    def test_5_the_image_runs_as_roomcast_reports_healthy_and_serves_the_demo_page(self):
        for node in NODES:
            self.assertEqual(self.runner.inspect(node, "{{.Config.User}}"), "10001:10001")
            deadline = time.monotonic() + 30
            while self.runner.inspect(node, "{{.State.Health.Status}}") != "healthy":
                self.assertLess(time.monotonic(), deadline, f"{node} never healthy")
                time.sleep(1)
        ps = self.runner.podman("exec", self.runner.container("node1"), "id", "-un")
        self.assertEqual(ps.strip(), "roomcast")
        # Containers without a fixed address get one outside the nodes' (.11-.13).
        for service in ("rabbitmq", "lb"):
            self.assertGreaterEqual(int(self.runner.address(service).split(".")[-1]), 128,
                                    service)
        # The demo page and the client library, from the image's web root.
        status, body = self.runner.get("/")
        self.assertEqual(status, 200)
        self.assertIn("<!doctype html>", body.lower())
        status, body = self.runner.get("/roomcast.js")
        self.assertEqual(status, 200)
        self.assertIn("class", body)

    async def test_6_a_node_is_reached_through_nginx_after_another_container_took_its_address(self):
        # nginx resolved node1 when it started. A stopped container's address
        # goes back to the pool; here a container started meanwhile takes the
        # next free one, which is node1's without fixed addresses.
        node = "node1"
        before = self.runner.address(node)
        self.runner.run("stop", node)
        filler = f"{PROJECT}-filler"
        self.runner.podman("run", "-d", "--rm", "--name", filler, "--network",
                           f"{PROJECT}_default", "docker.io/library/debian:bookworm",
                           "sleep", "120")
        try:
            self.runner.run("start", node)    # waits for /nodes/node1/readyz through nginx
            after = self.runner.address(node)
            self.assertEqual(after, before)
            members = await topology.open_members(self.runner, [f"back{i}" for i in range(12)])
            try:
                self.assertIn(node, {m.session.node for m in members})
            finally:
                await topology.stop_members(members)
        finally:
            self.runner.podman("rm", "-f", "-t", "0", filler)


    async def test_7_private_messages_stored_in_rabbitmq_outlive_a_broker_restart(self):
        # Sent through nginx to a user who is offline: kept in RabbitMQ.
        user = f"durable-{os.getpid()}"
        for n in range(3):
            self.assertEqual(self.runner.post_json("/api/publish", {"user": user, "from": "svc",
                                                                   "data": {"n": n}}),
                             (202, {"ok": True}))
        # RabbitMQ stops and comes back, on another address if the filler took
        # its old one: the nodes reconnect by name (/readyz is 200 again).
        before = self.runner.address("rabbitmq")
        self.runner.compose("stop", "rabbitmq")
        filler = f"{PROJECT}-filler-mq"
        self.runner.podman("run", "-d", "--rm", "--name", filler, "--network",
                           f"{PROJECT}_default", "docker.io/library/debian:bookworm",
                           "sleep", "120")
        try:
            self.runner.compose("start", "rabbitmq")
            try:
                self.runner.wait_ready(NODES)
            except AssertionError as e:
                # Once (1 CI run of many) the nodes never reconnected: say
                # what RabbitMQ and the name "rabbitmq" were doing.
                raise AssertionError(f"{e}\n{self.broker_state(before)}") from None
            after = self.runner.address("rabbitmq")
            self.runner.refresh()
            members = await topology.open_members(self.runner, [user])
            try:
                await topology.wait_until("the stored messages",
                                          lambda: len(members[0].privates) >= 3, 15)
                await asyncio.sleep(0.3)
                self.assertEqual(members[0].privates, [{"n": 0}, {"n": 1}, {"n": 2}])
            finally:
                await topology.stop_members(members)
        finally:
            self.runner.podman("rm", "-f", "-t", "0", filler)
        print(f"\n  RabbitMQ restarted ({before} -> {after}); 3 stored messages delivered "
              f"in order", file=sys.stderr)


    def broker_state(self, before):
        """RabbitMQ's address before and now, what node1 resolves its name
        to, and RabbitMQ's last log lines."""
        out = [f"rabbitmq was at {before}"]
        for what, call in (
                ("rabbitmq is at", lambda: self.runner.address("rabbitmq")),
                ("node1 resolves rabbitmq to", lambda: self.runner.podman(
                    "exec", self.runner.container("node1"), "getent", "hosts", "rabbitmq",
                    timeout=30)),
                ("rabbitmq's state", lambda: self.runner.inspect(
                    "rabbitmq", "{{.State.Status}} {{.State.Health.Status}}")),
                ("node1's readyz", lambda: self.runner.get("/nodes/node1/readyz")),
                ("rabbitmq's log", lambda: self.runner.podman(
                    "exec", self.runner.container("rabbitmq"), "sh", "-c",
                    "ls /var/log/rabbitmq/*.log | grep -v _upgrade | xargs tail -n 30", timeout=30))):
            try:
                out.append(f"{what}: {call()}")
            except Exception as e:  # diagnostics only: each part on its own
                out.append(f"{what}: ({e})")
        return "\n".join(out)

    async def test_8_nginx_restarts_while_a_node_is_down_and_stops_without_being_killed(self):
        clients = []
        try:
            for i in range(6):
                ws = await harness.connect(self.runner.url(f"lb-restart{i}"))
                await harness.recv_json(ws)
                clients.append(ws)
            self.runner.run("stop", "node2")
            # A graceful stop with WebSockets open: nginx ends them itself
            # (worker_shutdown_timeout) instead of being killed (137).
            self.runner.compose("stop", "lb")
            self.assertEqual(self.runner.inspect("lb", "{{.State.ExitCode}}"), "0")
            # It starts again although node2's name is not in the network's DNS.
            self.runner.compose("start", "lb")
            deadline = time.monotonic() + 20
            while True:
                try:
                    if self.runner.get("/healthz")[0] == 200:
                        break
                except OSError:
                    pass
                self.assertLess(time.monotonic(), deadline, "nginx did not come back:\n"
                                + self.runner.logs("lb"))
                await asyncio.sleep(0.2)
            fresh = await topology.open_members(self.runner, [f"lb-fresh{i}" for i in range(9)])
            try:
                self.assertEqual({m.session.node for m in fresh}, {"node1", "node3"})
            finally:
                await topology.stop_members(fresh)
        finally:
            for ws in clients:
                await ws.close()
            self.runner.run("start", "node2")


    async def test_9_the_haproxy_profile_serves_the_same_cluster(self):
        url = f"ws://{harness.HOST}:{self.runner.haproxy_port}/ws?user="
        # HAProxy marks a node up after two health checks, and re-resolves a
        # node restarted by test_8 (its name was gone from DNS meanwhile).
        deadline = time.monotonic() + 60
        seen, last = set(), None
        while seen != set(NODES):
            self.assertLess(time.monotonic(), deadline,
                            f"HAProxy reached only {seen} ({last!r}):\n"
                            + self.runner.logs("lb-haproxy"))
            try:
                ws = await harness.connect(url + "ha-probe")
                seen.add((await harness.recv_json(ws))["node"])
                await ws.close()
            except (OSError, asyncio.TimeoutError,
                    topology.websockets.exceptions.WebSocketException) as e:
                last = e
                await asyncio.sleep(0.5)
        clients = []
        try:
            nodes = set()
            for i in range(12):
                ws = await harness.connect(url + f"ha{i}")
                clients.append(ws)
                nodes.add((await harness.recv_json(ws))["node"])
                await harness.send_json(ws, {"type": "join", "room": "via-haproxy", "id": "j"})
                self.assertEqual((await harness.recv_json(ws))["type"], "joined")
            self.assertEqual(nodes, set(NODES), "leastconn over the three nodes")
            await harness.send_json(clients[0], {"type": "publish", "room": "via-haproxy",
                                                 "data": {"hello": 1}, "echo": True, "id": "p"})
            for ws in clients:
                while True:
                    frame = await harness.recv_json(ws, 10)
                    if frame["type"] == "message":
                        break
                self.assertEqual(frame["data"], {"hello": 1})
        finally:
            for ws in clients:
                await ws.close()

if __name__ == "__main__":
    harness.main()
