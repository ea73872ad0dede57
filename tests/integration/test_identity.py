"""Identity and upgrade refusals: JWT (HS256) via ?token= and Bearer, `sub`,
`exp` (refused and expiring while connected), `rooms` globs, ?user= in
development mode, the Origin allow-list and the connection limit."""

import asyncio
import time
import unittest

import harness
from harness import RawWebSocket, make_jwt, raw_upgrade, request, wait_closed

SECRET = "it-secret-0123456789"


def refused(test, server, status, code, path="/ws", headers=None):
    """Asserts an upgrade is refused with `status` and a JSON error body."""
    sock, res, _ = raw_upgrade(server.port, path, headers)
    test.assertIsNone(sock, "the upgrade was accepted")
    test.assertEqual(res.status, status, res.body)
    test.assertTrue(res.headers.get("content-type", "").startswith("application/json"))
    body = res.json()
    test.assertEqual(set(body), {"error"})
    test.assertEqual(set(body["error"]), {"code", "message"})
    test.assertEqual(body["error"]["code"], code)
    test.assertIsInstance(body["error"]["message"], str)
    test.assertTrue(body["error"]["message"])
    return body


def accepted(test, server, path="/ws", headers=None):
    sock, res, _ = raw_upgrade(server.port, path, headers)
    test.assertEqual(res.status, 101)
    sock.close()


class JwtTest(harness.ServerTestCase):
    server_args = ("--jwt-secret", SECRET)

    def token(self, **claims):
        claims.setdefault("exp", int(time.time()) + 300)
        return make_jwt(SECRET, claims)

    def test_refusals_are_401_with_json_body(self):
        before = self.server.metric("roomcast_upgrades_refused_total")
        now = int(time.time())
        bad = [
            "/ws",                                                        # no token
            "/ws?user=alice",                                             # ?user= is no proof
            "/ws?token=",                                                 # empty token
            "/ws?token=not.a.jwt",                                        # garbage
            "/ws?token=" + make_jwt("wrong-secret", {"sub": "alice", "exp": now + 300}),
            "/ws?token=" + make_jwt(SECRET, {"sub": "alice", "exp": now - 10}),   # expired
            "/ws?token=" + make_jwt(SECRET, {"exp": now + 300}),                  # no sub
            "/ws?token=" + make_jwt(SECRET, {"sub": "bad name", "exp": now + 300}),
            "/ws?token=" + make_jwt(SECRET, {"sub": "alice", "rooms": "chat:*"}),  # not a list
        ]
        for path in bad:
            with self.subTest(path=path[:60]):
                refused(self, self.server, 401, "unauthorized", path)
        # A valid token with its signature cut off or altered.
        tok = self.token(sub="alice")
        head, payload, sig = tok.split(".")
        refused(self, self.server, 401, "unauthorized", f"/ws?token={head}.{payload}.")
        flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
        refused(self, self.server, 401, "unauthorized", f"/ws?token={head}.{payload}.{flipped}")
        # Bearer with a bad token, and a non-Bearer Authorization header.
        refused(self, self.server, 401, "unauthorized", "/ws",
                {"Authorization": "Bearer " + make_jwt("nope", {"sub": "a"})})
        refused(self, self.server, 401, "unauthorized", "/ws", {"Authorization": "Basic " + tok})
        self.assertEqual(self.server.metric("roomcast_upgrades_refused_total"), before + 13)

    async def test_websockets_client_sees_401(self):
        with self.assertRaises(harness.websockets.exceptions.InvalidStatusCode) as cm:
            await harness.connect(self.server.ws_url())
        self.assertEqual(cm.exception.status_code, 401)

    async def test_token_in_query_names_user(self):
        ws = await self.client(token=self.token(sub="alice"), expect_welcome=False)
        self.assertEqual(await harness.recv_json(ws),
                         {"type": "welcome", "user": "alice", "node": "it-node"})

    async def test_token_wins_over_user_param(self):
        url = self.server.ws_url(token=self.token(sub="alice"), query={"user": "mallory"})
        ws = await harness.connect(url)
        self._clients.append(ws)
        self.assertEqual((await harness.recv_json(ws))["user"], "alice")

    def test_two_different_tokens_are_refused(self):
        # Before, only ?token= was checked and a bad Bearer header went unseen.
        good, other = self.token(sub="alice"), self.token(sub="bob")
        bad = make_jwt("nope", {"sub": "alice"})
        for query, header in ((good, bad), (bad, good), (good, other)):
            with self.subTest(query=query[-8:], header=header[-8:]):
                refused(self, self.server, 401, "unauthorized", "/ws?token=" + query,
                        {"Authorization": "Bearer " + header})

    def test_a_refusal_behind_a_proxy_logs_the_client_it_names(self):
        refused(self, self.server, 401, "unauthorized", "/ws",
                {"X-Forwarded-For": "203.0.113.7, 10.0.0.2"})
        self.server.wait_log("refused WebSocket upgrade from 127.0.0.1 "
                             "(X-Forwarded-For: 203.0.113.7, 10.0.0.2): 401")

    def test_a_token_parameter_given_twice_is_400(self):
        tok = self.token(sub="alice")
        refused(self, self.server, 400, "bad_request", f"/ws?token={tok}&token={tok}")

    async def test_the_same_token_twice_is_accepted(self):
        tok = self.token(sub="alice")
        ws = await harness.connect(self.server.ws_url(token=tok),
                                   extra_headers={"Authorization": "Bearer " + tok})
        self._clients.append(ws)
        self.assertEqual((await harness.recv_json(ws))["user"], "alice")

    async def test_bearer_header(self):
        # The scheme is case-insensitive (RFC 9110 11.1).
        for scheme in ("Bearer", "bearer", "BEARER"):
            ws = await harness.connect(
                self.server.ws_url(),
                extra_headers={"Authorization": f"{scheme} " + self.token(sub="bob")})
            self._clients.append(ws)
            self.assertEqual(await harness.recv_json(ws),
                             {"type": "welcome", "user": "bob", "node": "it-node"}, scheme)

    def test_fractional_exp_in_the_future_is_accepted(self):
        # RFC 7519 NumericDate may be non-integer.
        tok = make_jwt(SECRET, {"sub": "frac", "exp": time.time() + 300.5})
        sock, res, _ = raw_upgrade(self.server.port, "/ws?token=" + tok)
        if sock is not None:
            sock.close()
        self.assertEqual(res.status, 101, res.body)

    def test_exp_after_2262_is_accepted(self):
        # Past 2^63 nanoseconds since 1970: such a token must not wrap into the past.
        for exp in (9223372036, 9223372037, 9999999999, 32503680000, 1e300):
            with self.subTest(exp=exp):
                accepted(self, self.server,
                         "/ws?token=" + make_jwt(SECRET, {"sub": "far", "exp": exp}))
        refused(self, self.server, 401, "unauthorized",
                "/ws?token=" + make_jwt(SECRET, {"sub": "far", "exp": -1e300}))

    def test_non_numeric_exp_refused(self):
        for exp in ("9999999999", None, True, [1]):
            with self.subTest(exp=exp):
                refused(self, self.server, 401, "unauthorized",
                        "/ws?token=" + make_jwt(SECRET, {"sub": "alice", "exp": exp}))

    def test_nbf_in_the_future_is_refused_and_in_the_past_accepted(self):
        now = time.time()
        body = refused(self, self.server, 401, "unauthorized",
                       "/ws?token=" + make_jwt(SECRET, {"sub": "early", "nbf": now + 300}))
        self.assertIn("nbf", body["error"]["message"])
        refused(self, self.server, 401, "unauthorized",
                "/ws?token=" + make_jwt(SECRET, {"sub": "early", "nbf": "soon"}))
        accepted(self, self.server,
                 "/ws?token=" + make_jwt(SECRET, {"sub": "on-time", "nbf": now - 5.5}))

    async def test_token_without_exp_is_accepted(self):
        ws = await self.client(token=make_jwt(SECRET, {"sub": "noexp"}))
        self.assertEqual(ws.welcome["user"], "noexp")

    def test_other_algorithm_refused(self):
        # Signed with the right secret but HS512: only HS256 is accepted.
        import base64, hashlib, hmac, json
        enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
        signing = (enc(json.dumps({"alg": "HS512", "typ": "JWT"}).encode()) + "."
                   + enc(json.dumps({"sub": "alice"}).encode()))
        sig = enc(hmac.new(SECRET.encode(), signing.encode(), hashlib.sha512).digest())
        refused(self, self.server, 401, "unauthorized", f"/ws?token={signing}.{sig}")
        # The right signature under "hs256": alg is case-sensitive (RFC 7515).
        for alg in ("hs256", "Hs256", "HS256 "):
            with self.subTest(alg=alg):
                tok = make_jwt(SECRET, {"sub": "alice"}, header={"alg": alg, "typ": "JWT"})
                refused(self, self.server, 401, "unauthorized", "/ws?token=" + tok)
        # alg "none" without a signature.
        none = enc(json.dumps({"alg": "none"}).encode()) + "." + enc(b'{"sub":"alice"}') + "."
        refused(self, self.server, 401, "unauthorized", f"/ws?token={none}")

    async def test_rooms_claim_limits_joins(self):
        ws = await self.client(token=self.token(sub="carol", rooms=["chat:*", "lobby"]))
        for room in ("chat:1", "chat:general", "lobby"):
            joined = await request(ws, {"type": "join", "room": room}, "joined")
            self.assertEqual(joined["room"], room)
        for room in ("lobby2", "other", "chat", "xchat:1"):
            err = await request(ws, {"type": "join", "room": room, "id": room}, "error")
            self.assertEqual((err["code"], err["id"]), ("forbidden", room))
        # Without membership, publishing there is refused too.
        err = await request(ws, {"type": "publish", "room": "other", "data": 1, "id": 1}, "error")
        self.assertEqual(err["code"], "not_member")
        # Allowed rooms work normally.
        ack = await request(ws, {"type": "publish", "room": "chat:1", "data": 1, "id": 2}, "ack")
        self.assertEqual(ack["id"], 2)

    async def test_empty_rooms_claim_allows_nothing(self):
        ws = await self.client(token=self.token(sub="dave", rooms=[]))
        err = await request(ws, {"type": "join", "room": "any", "id": 1}, "error")
        self.assertEqual(err["code"], "forbidden")

    async def test_token_without_rooms_claim_allows_any_room(self):
        ws = await self.client(token=self.token(sub="erin"))
        await request(ws, {"type": "join", "room": "anything-at-all"}, "joined")

    async def test_expiry_while_connected_closes_1008(self):
        before = self.server.closes("auth_expired")
        exp = int(time.time()) + 2
        ws = await self.client(token=make_jwt(SECRET, {"sub": "frank", "exp": exp}))
        await request(ws, {"type": "ping"}, "pong")  # usable until exp
        code, reason, frames = await wait_closed(ws, timeout=5)
        self.assertEqual((code, reason), (1008, "auth_expired"))
        self.assertEqual(frames, [])
        self.assertGreaterEqual(time.time(), exp - 0.05)
        self.assertEqual(await self.server.await_metric("roomcast_closes_total", before + 1,
                                                        reason="auth_expired"), before + 1)


class DevModeTest(harness.ServerTestCase):
    """No secret: ?user= is taken as given; invalid names are 400."""

    def test_invalid_user_is_400(self):
        before = self.server.metric("roomcast_upgrades_refused_total")
        for user in ("bad%20name!", "bad+name", "x" * 129, "caf%C3%A9", "a/b"):
            with self.subTest(user=user):
                refused(self, self.server, 400, "bad_name", "/ws?user=" + user)
        self.assertEqual(self.server.metric("roomcast_upgrades_refused_total"), before + 5)

    def test_empty_user_is_400(self):
        # Names are 1 to 128 bytes: an empty or bare ?user is no name, not anonymous.
        for path in ("/ws?user=", "/ws?user", "/ws?x=1&user=&y=2", "/ws?user=%20"):
            with self.subTest(path=path):
                refused(self, self.server, 400, "bad_name", path)

    def test_a_user_given_twice_is_400(self):
        # Before, the first value won and the second went unseen.
        for path in ("/ws?user=alice&user=bob", "/ws?user=alice&user=alice", "/ws?user=a&x=1&user"):
            with self.subTest(path=path):
                body = refused(self, self.server, 400, "bad_request", path)
                self.assertIn("?user= is given more than once", body["error"]["message"])
        accepted(self, self.server, "/ws?user=alice&username=bob&xuser=c")

    async def test_user_param_names_user(self):
        ws = await self.client(user="x" * 128)
        self.assertEqual(ws.welcome["user"], "x" * 128)
        ws = await self.client(user="A-Za-z0-9_.:@-")
        self.assertEqual(ws.welcome["user"], "A-Za-z0-9_.:@-")

    def test_a_token_is_refused_rather_than_ignored(self):
        # Without a secret nothing can check it; anon-<n> would silently not be its user.
        token = make_jwt("any", {"sub": "alice"})
        for path, headers in (("/ws?token=" + token, None), ("/ws?token=x&user=alice", None),
                              ("/ws", {"Authorization": "Bearer " + token})):
            with self.subTest(path=path, headers=headers):
                body = refused(self, self.server, 401, "unauthorized", path, headers)
                self.assertIn("--jwt-secret", body["error"]["message"])

    def test_an_empty_token_is_refused(self):
        # Before, it counted as no token: the client became anon-<n>.
        for path in ("/ws?token=", "/ws?token", "/ws?user=alice&token="):
            with self.subTest(path=path):
                body = refused(self, self.server, 401, "unauthorized", path)
                self.assertEqual(body["error"]["message"], "?token= is empty")

    def test_plain_get_on_ws_is_400(self):
        status, _, body = self.server.http("GET", "/ws")
        self.assertEqual(status, 400)
        self.assertEqual(harness.json.loads(body)["error"]["code"], "bad_request")


class OriginTest(harness.ServerTestCase):
    server_args = ("--allowed-origins", "http://good,https://also.example")

    def test_origins(self):
        before = self.server.metric("roomcast_upgrades_refused_total")
        refused(self, self.server, 403, "forbidden", "/ws?user=o1", {"Origin": "http://evil"})
        refused(self, self.server, 403, "forbidden", "/ws?user=o1", {"Origin": "http://good.evil"})
        refused(self, self.server, 403, "forbidden", "/ws?user=o1", {"Origin": "null"})
        accepted(self, self.server, "/ws?user=o2", {"Origin": "http://good"})
        accepted(self, self.server, "/ws?user=o3", {"Origin": "https://also.example"})
        accepted(self, self.server, "/ws?user=o4")  # no Origin header: not a browser
        self.assertEqual(self.server.metric("roomcast_upgrades_refused_total"), before + 3)

    async def test_websockets_client_with_origin(self):
        with self.assertRaises(harness.websockets.exceptions.InvalidStatusCode) as cm:
            await harness.connect(self.server.ws_url(user="w"), origin="http://evil")
        self.assertEqual(cm.exception.status_code, 403)
        ws = await harness.connect(self.server.ws_url(user="w"), origin="http://good")
        self._clients.append(ws)
        self.assertEqual((await harness.recv_json(ws))["type"], "welcome")


class MaxConnectionsTest(harness.ServerTestCase):
    server_args = ("--max-connections", "2")

    async def connect_once_a_slot_is_free(self, user, seconds):
        """Connects `user`, again while refused with 1013, for at most
        `seconds`; returns the welcomed client, or None."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            candidate = await harness.connect(self.server.ws_url(user=user))
            try:
                welcome = await harness.recv_json(candidate)
                self.assertEqual((welcome["type"], welcome["user"]), ("welcome", user))
                self._clients.append(candidate)
                return candidate
            except harness.websockets.exceptions.ConnectionClosed as e:
                self.assertEqual(harness.close_info(e), (1013, "node_full"))
                await asyncio.sleep(0.05)
        return None

    async def test_third_connection_is_closed_with_1013(self):
        a = await self.client("m1")
        b = await self.client("m2")
        before = self.server.closes("node_full")
        # The upgrade succeeds, then the node closes with 1013 "try again
        # later" (PROTOCOL.md) before anything else: no welcome.
        ws = await harness.connect(self.server.ws_url(user="m3"))
        code, reason, frames = await harness.wait_closed(ws)
        self.assertEqual((code, reason, frames), (1013, "node_full", []))
        self.assertEqual(self.server.closes("node_full"), before + 1)
        # The two open connections still work.
        for ws in (a, b):
            await request(ws, {"type": "ping"}, "pong")
        # Once one closes, its slot is free again (bounded retries).
        await a.close()
        ws = await self.connect_once_a_slot_is_free("m4", seconds=5)
        self.assertIsNotNone(ws, "no slot freed within 5 s after a close")

    async def test_a_refused_client_that_never_answers_the_close_holds_no_slot(self):
        a = await self.client("n1")
        await self.client("n2")
        # Refused with 1013; it reads the close frame but never answers it.
        raw = RawWebSocket(self.server.port, "/ws?user=n3")
        self.addCleanup(raw.close)
        opcode, payload = raw.read_frame()
        self.assertEqual((opcode, payload[:2]), (0x8, (1013).to_bytes(2, "big")))
        await a.close()
        # Before, the refused session held a slot until its close timed out
        # (the handshake timeout, 10 s): every client was refused until then.
        ws = await self.connect_once_a_slot_is_free("n4", seconds=3)
        self.assertIsNotNone(ws, "a refused client that never closed still held a slot")


if __name__ == "__main__":
    harness.main()
