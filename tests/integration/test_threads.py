"""How many threads a node starts: `--threads 0` and `--actor-threads 0` mean
the cores the process may use (its CPU affinity mask and its cgroup CPU
quota), not every core of the host, so nodes given part of a host (taskset,
a container's `cpus:`) do not start more threads than they may run. Counted
in /proc/PID/task, where the I/O threads are named roomcast.io and CAF's
workers caf.multiplexer, and in the node's start-up log."""

import collections
import contextlib
import os
import re
import shutil
import unittest
import uuid

import harness
from harness import request

THREADS_RE = re.compile(r"I/O threads: (\d+), actor threads: (\d+)")


def thread_names(pid):
    names = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                names[f.read().strip()] += 1
    return names


def read(path):
    try:
        with open(path) as f:
            return f.read().split()
    except OSError:
        return []


def quota_cores():
    """The tightest CPU quota on this process's cgroups, rounded up (None if
    none): what a node started from here is held to, read independently of
    roomcastd's own code."""
    tightest = None
    for line in read("/proc/self/cgroup"):
        hid, controllers, path = line.split(":", 2)
        if hid == "0":
            root, files = "/sys/fs/cgroup", ("cpu.max",)
        elif "cpu" in controllers.split(","):
            root, files = "/sys/fs/cgroup/cpu", ("cpu.cfs_quota_us", "cpu.cfs_period_us")
        else:
            continue
        while True:
            d = root + (path if path != "/" else "")
            values = sum((read(os.path.join(d, f)) for f in files), [])
            if len(values) == 2 and values[0] not in ("max", "-1"):
                cores = -(-int(values[0]) // int(values[1]))
                tightest = cores if tightest is None else min(tightest, cores)
            if path in ("", "/"):
                break
            path = path.rsplit("/", 1)[0] or "/"
    return tightest


@contextlib.contextmanager
def cpu_quota_cgroup(cores):
    """A cgroup of our own with a CPU quota of `cores`, removed afterwards;
    None where this machine lets us make none (not root, no cpu controller)."""
    name = f"roomcast-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    v2 = "/sys/fs/cgroup"
    v1 = "/sys/fs/cgroup/cpu"
    path = None
    try:
        if os.path.exists(os.path.join(v2, "cgroup.controllers")):
            with open(os.path.join(v2, "cgroup.subtree_control")) as f:
                if "cpu" in f.read().split():
                    path = os.path.join(v2, name)
                    os.mkdir(path)
                    with open(os.path.join(path, "cpu.max"), "w") as f:
                        f.write(f"{cores * 100000} 100000")
        elif os.path.exists(os.path.join(v1, "cpu.cfs_quota_us")):
            path = os.path.join(v1, name)
            os.mkdir(path)
            with open(os.path.join(path, "cpu.cfs_period_us"), "w") as f:
                f.write("100000")
            with open(os.path.join(path, "cpu.cfs_quota_us"), "w") as f:
                f.write(str(cores * 100000))
    except OSError:
        if path and os.path.isdir(path):
            os.rmdir(path)
        path = None
    try:
        yield path
    finally:
        if path:
            os.rmdir(path)  # empty again: its process has exited


class ThreadsTest(unittest.IsolatedAsyncioTestCase):

    def start(self, *args, prefix=()):
        server = harness.Server(*args)
        server.args = list(prefix) + server.args  # each prefix execs roomcastd: same PID
        server.start()
        self.addCleanup(lambda: self.assertEqual(server.stop(), 0, server.log()[-2000:]))
        return server

    def assertThreads(self, server, io, actors):
        m = THREADS_RE.search(server.wait_log("I/O threads:"))
        self.assertEqual((int(m.group(1)), int(m.group(2))), (io, actors))
        names = thread_names(server.proc.pid)
        self.assertEqual(names["roomcast.io"], io, names)
        # CAF's workers; a node without --cluster-port has no network thread.
        self.assertEqual(names["caf.multiplexer"], actors, names)

    async def assertServes(self, server):
        ws = await server.connect()
        try:
            joined = await request(ws, {"type": "join", "room": "lobby"}, "joined")
            self.assertEqual(joined.get("room"), "lobby")
        finally:
            await ws.close()

    async def test_defaults_follow_the_cores_the_process_may_use(self):
        cores = len(os.sched_getaffinity(0))
        if quota_cores() is not None:
            cores = min(cores, quota_cores())
        server = self.start()
        self.assertThreads(server, cores, cores)
        await self.assertServes(server)

    @unittest.skipUnless(shutil.which("taskset"), "taskset (util-linux) not installed")
    async def test_a_node_pinned_to_one_core_starts_one_thread_of_each(self):
        server = self.start(prefix=["taskset", "-c", str(min(os.sched_getaffinity(0)))])
        self.assertThreads(server, 1, 1)
        await self.assertServes(server)

    @unittest.skipUnless(shutil.which("taskset"), "taskset (util-linux) not installed")
    async def test_explicit_counts_win_over_the_affinity_mask(self):
        server = self.start("--threads", "3", "--actor-threads", "2",
                            prefix=["taskset", "-c", str(min(os.sched_getaffinity(0)))])
        self.assertThreads(server, 3, 2)
        await self.assertServes(server)

    async def test_a_cgroup_cpu_quota_caps_the_defaults(self):
        if len(os.sched_getaffinity(0)) < 2:
            self.skipTest("one core only: a quota of one core changes nothing")
        with cpu_quota_cgroup(1) as cgroup:
            if cgroup is None:
                self.skipTest("cannot make a cgroup with a CPU quota here (needs root and the cpu controller)")
            # The shell joins the cgroup, then becomes roomcastd (same PID).
            server = self.start(prefix=["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh"])
            try:
                self.assertThreads(server, 1, 1)
                await self.assertServes(server)
            finally:
                server.stop()  # the cgroup must be empty before it is removed


if __name__ == "__main__":
    harness.main()
