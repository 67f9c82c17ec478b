"""The ARI REST transport (controller/adapters/ari/transport.py, on aiohttp) held to the client's
contract through ``AriClient``: error statuses map to the error classes, no answer is
``AriUnavailable``, and the faults end, bounded: a refused connect, a server that never
answers, a reset mid-response, a kept socket the server closed, requests cancelled midway, the
client closed with requests in flight; on asyncio's loop and on uvloop. The server is a local
asyncio one whose bytes the test controls. (The same tests held our own HTTP pool,
controller/adapters/ari/http.py, to this contract before it was deleted.)"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
import pytest

from controller.adapters.ari.client import AriClient
from controller.adapters.ari.errors import AriUnavailable, NotFound, ServerError
from controller.adapters.ari.transport import CONNECTS_AT_ONCE
from controller.tools import loops

TIMEOUT = 0.3
BOUND = 10 * TIMEOUT
"""A request that has not ended within this is stuck (each is bounded by TIMEOUT)."""
PASSWORD = "s3cret-pw"


class Fake(asyncio.Protocol):
    """One connection of :class:`FakeServer`: parses requests, answers as its mode says."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.conns.append(self)
        self.server.opened += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, _, rest = self.buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            n = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    n = int(value)
            if len(rest) < n:
                return
            self.buf = rest[n:]
            method, path, _ = lines[0].split(" ", 2)
            self.server.requests.append((method, path))
            self.server.got.set()
            self.answer(method, path)

    def answer(self, method: str, path: str) -> None:
        assert self.transport is not None
        mode = self.server.mode
        if mode == "silent":
            return
        if mode == "reset":
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Le")
            self.server.half_sent.set()
            return
        if path.endswith("/missing"):
            body, status = b'{"message": "Channel not found"}', "404 Not Found"
        elif path.endswith("/broken"):
            body, status = b'{"message": "Internal"}', "500 Internal Server Error"
        else:
            body, status = f'{{"method": "{method}", "path": "{path}"}}'.encode(), "200 OK"
        self.transport.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        if mode == "close-after":  # keep-alive announced, yet closed: a stale kept socket
            self.transport.close()

    def reset(self) -> None:
        """RST, as a crashed peer's kernel sends."""
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class FakeServer:
    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.requests: list[tuple[str, str]] = []
        self.got = asyncio.Event()
        self.half_sent = asyncio.Event()
        self.conns: list[Fake] = []
        self.opened = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> FakeServer:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: Fake(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for c in self.conns:
            if c.transport is not None:
                c.transport.abort()
        await asyncio.sleep(0)

    def reset_all(self) -> None:
        for c in self.conns:
            if c.transport is not None and not c.transport.is_closing():
                c.reset()


@contextlib.asynccontextmanager
async def client_for(port: int) -> AsyncIterator[AriClient]:
    c = AriClient(f"http://127.0.0.1:{port}", "callctl", PASSWORD, "app", timeout=TIMEOUT)
    try:
        yield c
    finally:
        await c.close()


async def bounded(aw: Awaitable[Any]) -> Any:
    try:
        async with asyncio.timeout(BOUND):
            return await aw
    except TimeoutError:
        raise AssertionError(f"an ARI request did not end within {BOUND} s") from None


async def until(pred: Any, what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {BOUND} s waiting for {what}")
        await asyncio.sleep(0.01)


def in_use(c: AriClient) -> int:
    """Connections the client's transport has checked out (0: none leaked)."""
    rest: Any = c._rest
    if rest is None:
        return 0
    return len(rest._session.connector._acquired)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------- contract


async def test_answers_and_error_statuses_map_the_same_way() -> None:
    async with FakeServer() as srv, client_for(srv.port) as c:
        got = await c.request("POST", "/channels", params={"endpoint": "PJSIP/a b"},
                              json={"variables": {"X": "é"}})
        assert got == {"method": "POST", "path": "/ari/channels?endpoint=PJSIP/a+b"}
        with pytest.raises(NotFound) as nf:
            await c.get_channel("missing")
        assert nf.value.message == "Channel not found" and nf.value.status == 404
        with pytest.raises(ServerError):
            await c.request("GET", "/broken")
        assert srv.opened == 1  # all on one kept socket
        assert in_use(c) == 0


@pytest.mark.parametrize("loop", loops.CHOICES)
def test_it_works_on_both_event_loops(loop: str) -> None:
    async def main() -> list[Any]:
        async with FakeServer() as srv, client_for(srv.port) as c:
            return await bounded(asyncio.gather(*(c.request("GET", f"/x{i}")
                                                  for i in range(5))))

    got = loops.run(main(), loop)
    assert [g["path"] for g in got] == [f"/ari/x{i}" for i in range(5)]


# ---------------------------------------------------------------------------- faults


async def test_nothing_listening_is_ari_unavailable_at_once() -> None:
    async with client_for(_free_port()) as c:
        for _ in range(3):
            with pytest.raises(AriUnavailable) as exc:
                await bounded(c.ping())
            assert exc.value.message == "cannot connect: Connection refused"
            assert PASSWORD not in str(exc.value)


async def test_a_server_that_never_answers_times_requests_out_then_they_work_again() -> None:
    async with FakeServer("silent") as srv, client_for(srv.port) as c:
        t0 = time.monotonic()
        results = await bounded(asyncio.gather(*(c.request("GET", f"/s{i}") for i in range(5)),
                                               return_exceptions=True))
        assert all(isinstance(e, AriUnavailable) and e.message == f"no answer within "
                   f"{TIMEOUT:g} s" for e in results), results
        assert time.monotonic() - t0 < 3 * TIMEOUT
        srv.mode = "ok"
        assert (await bounded(c.request("GET", "/after")))["path"] == "/ari/after"
        assert in_use(c) == 0


async def test_a_reset_mid_response_fails_the_request_and_the_next_reconnects() -> None:
    async with FakeServer("reset") as srv, client_for(srv.port) as c:
        # a POST: never resent (aiohttp resends a GET cut like this on a new socket)
        inflight = asyncio.create_task(c.request("POST", "/r"))
        await bounded(srv.half_sent.wait())
        srv.mode = "ok"
        srv.reset_all()
        with pytest.raises(AriUnavailable):
            await bounded(inflight)
        # a new connection, and nothing of the half response is left over
        for i in range(3):
            assert (await bounded(c.request("GET", f"/n{i}")))["path"] == f"/ari/n{i}"
        assert srv.opened == 2 and in_use(c) == 0


async def test_a_kept_socket_the_server_closed_is_replaced_and_a_post_never_sent_twice() -> None:
    async with FakeServer("close-after") as srv, client_for(srv.port) as c:
        posts = 0
        for i in range(10):
            # idempotent: resent on a fresh socket if the kept one turns out closed
            assert (await bounded(c.request("GET", f"/g{i}")))["path"] == f"/ari/g{i}"
            try:  # a POST may fail on a socket closed under it, never be executed twice
                await bounded(c.request("POST", f"/p{i}"))
            except AriUnavailable:
                pass
            posts += 1
            assert sum(1 for m, _ in srv.requests if m == "POST") <= posts
        assert srv.opened >= 10 and in_use(c) == 0


async def test_cancelled_requests_give_their_connections_back() -> None:
    async with FakeServer("silent") as srv, client_for(srv.port) as c:
        tasks = [asyncio.create_task(c.request("GET", f"/c{i}")) for i in range(5)]
        await until(lambda: len(srv.requests) == 5, "the 5 requests on the wire")
        for t in tasks:
            t.cancel()  # e.g. call tasks cancelled at shutdown
        done = await bounded(asyncio.gather(*tasks, return_exceptions=True))
        assert all(isinstance(d, asyncio.CancelledError) for d in done), done
        await until(lambda: in_use(c) == 0, "no connection left checked out")
        srv.mode = "ok"
        got = await bounded(asyncio.gather(*(c.request("GET", f"/d{i}") for i in range(5))))
        assert [g["path"] for g in got] == [f"/ari/d{i}" for i in range(5)]
        assert in_use(c) == 0


async def test_close_ends_the_requests_in_flight() -> None:
    async with FakeServer("silent") as srv:
        c = AriClient(f"http://127.0.0.1:{srv.port}", "callctl", PASSWORD, "app",
                      timeout=60.0)
        inflight = asyncio.create_task(c.request("GET", "/q"))
        await bounded(srv.got.wait())
        t0 = time.monotonic()
        await bounded(c.close())
        with pytest.raises((AriUnavailable, asyncio.CancelledError)):
            await bounded(inflight)
        assert time.monotonic() - t0 < BOUND  # not the 60 s timeout


async def test_new_connections_are_opened_at_most_8_at_a_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Asterisk's HTTP server listens with a backlog of 10: a burst of new connections must not
    all be opened at once (SYNs dropped, retried a second later)."""
    opening, most = 0, 0
    gate = asyncio.Event()

    async def slow_connect(self: Any, req: Any, traces: Any, timeout: Any) -> Any:
        nonlocal opening, most
        opening += 1
        most = max(most, opening)
        await gate.wait()
        opening -= 1
        raise aiohttp.ClientConnectorError(req, OSError(111, "Connection refused"))

    monkeypatch.setattr(aiohttp.TCPConnector, "_create_connection", slow_connect)
    async with client_for(_free_port()) as c:
        burst = asyncio.gather(*(c.request("GET", f"/b{i}") for i in range(30)),
                               return_exceptions=True)
        await until(lambda: opening >= CONNECTS_AT_ONCE, "the first connects under way")
        for _ in range(5):
            await asyncio.sleep(0)
        assert most == CONNECTS_AT_ONCE
        gate.set()
        results = await bounded(burst)
    assert all(isinstance(r, AriUnavailable) for r in results), results
    assert most == CONNECTS_AT_ONCE
