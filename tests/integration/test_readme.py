"""The README's first command, as a user runs it: `./scripts/run` installs
what is missing, builds and runs one node on its embedded defaults. (The
second command, `./scripts/test`, is what runs this file.)

It is run from the checkout with the build directory of the binary under
test (BUILD_DIR) and without CI=true, so that on a machine where
scripts/test has installed and built everything it neither calls apt-get
nor builds again. Only the HTTP port is chosen, as the README allows
(`./scripts/run --http-port 9000`): 8080 may be taken on a developer's
machine."""

import asyncio
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

import harness
from harness import request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START_TIMEOUT = 90.0   # a small rebuild may run first (CTest gives the file 110 s)
STOP_TIMEOUT = 15.0    # the default --drain-timeout is 10 s


def readme_commands():
    """The command lines of the README's first code block."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    if not block:
        raise AssertionError("README.md has no sh code block")
    return [line.split("#")[0].split() for line in block.group(1).splitlines() if line.strip()]


def build_dir_of(binary):
    """The CMake build directory of this checkout that holds `binary`, or None."""
    build = os.path.dirname(os.path.abspath(binary))
    try:
        with open(os.path.join(build, "CMakeCache.txt"), encoding="utf-8") as f:
            home = re.search(r"^CMAKE_HOME_DIRECTORY:INTERNAL=(.*)$", f.read(), re.M)
    except OSError:
        return None
    if not home or os.path.realpath(home.group(1)) != os.path.realpath(ROOT):
        return None
    return build


def http_get(port, path):
    status, _, body = harness.http_request(port, "GET", path)
    return status, body


class ReadmeRunCommandTest(unittest.IsolatedAsyncioTestCase):

    async def test_the_first_command_runs_a_node_that_serves_clients_and_stops_cleanly(self):
        commands = readme_commands()
        self.assertEqual(len(commands), 2, commands)
        self.assertEqual(commands[0], ["./scripts/run"])
        self.assertEqual(commands[1], ["./scripts/test"])
        build = build_dir_of(harness.resolve_binary())
        if build is None:
            self.skipTest(f"{harness.resolve_binary()} is not in a build directory of {ROOT}")
        port = harness.free_port()
        env = harness.clean_env({"BUILD_DIR": build})
        env.pop("CI", None)
        log = tempfile.NamedTemporaryFile(prefix="roomcast-readme-", suffix=".log", delete=False)
        # Its own process group: until scripts/run execs roomcastd, its
        # children (dpkg-query, cmake) are stopped with it.
        proc = subprocess.Popen([os.path.join(ROOT, commands[0][0]), "--http-port", str(port)],
                                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

        def output():
            with open(log.name, encoding="utf-8", errors="replace") as f:
                return f.read()[-4000:]

        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if proc.poll() is not None:
                    self.fail(f"scripts/run exited {proc.returncode}:\n{output()}")
                try:
                    if http_get(port, "/healthz")[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    self.fail(f"no node on port {port} within {START_TIMEOUT} s:\n{output()}")
                await asyncio.sleep(0.2)
            # The process is roomcastd now (scripts/run execs it), with the
            # embedded defaults: the demo page from the checkout's web/ at /.
            with open(f"/proc/{proc.pid}/comm", encoding="utf-8") as f:
                self.assertEqual(f.read().strip(), "roomcastd")
            status, body = http_get(port, "/")
            self.assertEqual(status, 200)
            self.assertIn("<title>roomcast chat</title>", body)
            self.assertEqual(http_get(port, "/roomcast.js")[0], 200)
            url = f"ws://{harness.HOST}:{port}/ws?user="
            alice = await harness.connect(url + "alice")
            bob = await harness.connect(url + "bob")
            try:
                for ws, user in ((alice, "alice"), (bob, "bob")):
                    welcome = await harness.recv_json(ws)
                    self.assertEqual((welcome["type"], welcome["user"]), ("welcome", user))
                    await request(ws, {"type": "join", "room": "lobby"}, "joined")
                ack = await request(alice, {"type": "publish", "room": "lobby",
                                            "data": {"text": "hi"}, "id": 1}, "ack")
                self.assertEqual(ack["id"], 1)
                message, _ = await harness.next_of_type(bob, "message")
                self.assertEqual((message["room"], message["from"], message["data"]),
                                 ("lobby", "alice", {"text": "hi"}))
            finally:
                await alice.close()
                await bob.close()
            os.kill(proc.pid, signal.SIGTERM)
            rc = await asyncio.get_running_loop().run_in_executor(None, proc.wait, STOP_TIMEOUT)
            self.assertEqual(rc, 0, output())
            self.assertIn("stopped", output())
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
            os.unlink(log.name)


if __name__ == "__main__":
    harness.main()
