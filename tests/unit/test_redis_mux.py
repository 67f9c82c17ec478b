"""controller.adapters.redis.mux: RESP2 encoding and parsing (pure), and the connection's faults:
a connect cancelled midway, Redis restarting, a server that never answers, a reset mid-reply
(the connection itself is used by every integration test through the store and the leases,
against the real Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redisproc import REDIS_SERVER, RedisServer

from controller.adapters.redis.mux import (
    Endpoint,
    ProtocolError,
    RedisMux,
    RespParser,
    Script,
    encode,
)

STREAM = (b"+OK\r\n:42\r\n$5\r\nh\xc3\xa9lo\r\n$-1\r\n"
          b"*3\r\n:1\r\n$0\r\n\r\n*2\r\n$1\r\na\r\n$-1\r\n"
          b"-NOSCRIPT No matching script\r\n*-1\r\n*0\r\n")
WANT = ["OK", 42, "hélo", None, [1, "", ["a", None]], "NOSCRIPT No matching script", None, []]


def _norm(replies: list[object]) -> list[object]:
    return [str(r) if isinstance(r, ResponseError) else r for r in replies]


def test_encode_is_a_resp_array_of_bulk_strings() -> None:
    assert encode(["SET", "k", "vé", 3, 1.5, b"\x00"]) == (
        b"*6\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\xc3\xa9\r\n$1\r\n3\r\n$3\r\n1.5\r\n"
        b"$1\r\n\x00\r\n")


@pytest.mark.parametrize("bad", [True, None, object()])
def test_encode_refuses_what_redis_would_get_wrong(bad: object) -> None:
    with pytest.raises(TypeError):
        encode(["SET", "k", bad])


def test_parser_whole_stream() -> None:
    replies = RespParser().feed(STREAM)
    assert isinstance(replies[5], ResponseError)
    assert _norm(replies) == WANT


def test_parser_byte_by_byte_gives_the_same_replies_in_order() -> None:
    p = RespParser()
    got: list[object] = []
    for i in range(len(STREAM)):
        got += p.feed(STREAM[i:i + 1])
    assert _norm(got) == WANT


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_parser_any_split_point(cut: int) -> None:
    p = RespParser()
    assert _norm(p.feed(STREAM[:cut]) + p.feed(STREAM[cut:])) == WANT


def test_a_bulk_string_may_contain_crlf() -> None:
    assert RespParser().feed(b"$4\r\na\r\nb\r\n") == ["a\r\nb"]


@pytest.mark.parametrize("bad", [b"?x\r\n", b":12a\r\n", b"$3\r\nabcXY", b"\r\n"])
def test_parser_malformed_stream_is_a_protocol_error(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        RespParser().feed(bad)


def test_script_sha_is_the_sha1_redis_computes() -> None:
    src = "return 1"
    assert Script(src).sha == hashlib.sha1(src.encode()).hexdigest()


# ------------------------------------------------------------------ faults (issue 13 item 2)
# A real redis-server (tests/redisproc.py) where a real one can show the fault, a local
# asyncio TCP server where the fault is in the bytes (silent, reset mid-reply).

TIMEOUT = 0.5
BOUND = 10 * TIMEOUT
"""A command that has not ended within this is stuck (they are bounded by ~2.5 x TIMEOUT)."""


@pytest.fixture(scope="module")
def real() -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    srv = RedisServer()
    srv.start()
    yield srv
    srv.cleanup()


class Target:
    """A mutable endpoint (asked at every connect, like Sentinel): ``gate`` set to an unset
    Event makes the lookup wait (a Sentinel that does not answer)."""

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self.gate: asyncio.Event | None = None
        self.asked = asyncio.Event()

    async def __call__(self) -> Endpoint:
        self.asked.set()
        if self.gate is not None:
            await self.gate.wait()
        return self.ep


def real_ep(srv: RedisServer) -> Endpoint:
    return Endpoint(port=srv.port, password=srv.password)


class FakeServer:
    """A TCP server on 127.0.0.1 that accepts and then does what ``mode`` says: ``silent``
    reads and never writes; ``reset`` answers the first command with half a reply, then
    resets the connection (RST) when ``reset_now`` is set."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.accepted = asyncio.Event()
        self.reset_now = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> FakeServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        if hasattr(self.server, "close_clients"):
            self.server.close_clients()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.set()
        try:
            if self.mode == "reset":
                await reader.read(1)
                writer.write(b"$10\r\nhel")
                await writer.drain()
                await self.reset_now.wait()
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            while await reader.read(4096):
                pass
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


async def bounded(aw: Awaitable[Any]) -> Any:
    """``aw``'s result or its Redis error; a hang past BOUND fails the test."""
    try:
        async with asyncio.timeout(BOUND):
            return await aw
    except TimeoutError:
        raise AssertionError(f"a Redis command did not end within {BOUND} s") from None


async def until(pred: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {BOUND} s waiting for {what}")
        await asyncio.sleep(0.01)


async def works(mux: RedisMux) -> bool:
    """The mux answers again (a reconnect after a fault), within BOUND."""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        try:
            if await bounded(mux.execute("PING")) == "PONG":
                return True
        except (RedisConnectionError, RedisTimeoutError):
            await asyncio.sleep(0.05)
    return False


@pytest.mark.parametrize("where", ["endpoint lookup", "AUTH"])
async def test_a_cancelled_connect_does_not_jam_the_commands_after_it(
        real: RedisServer, where: str) -> None:
    async with FakeServer("silent") as fake:
        target = Target(Endpoint(port=fake.port, password="x"))
        if where == "endpoint lookup":
            target.gate = asyncio.Event()
        mux = RedisMux(target, timeout=TIMEOUT)
        try:
            first = asyncio.create_task(mux.execute("PING"))
            await bounded((target.asked if target.gate else fake.accepted).wait())
            first.cancel()  # e.g. a call task cancelled while it loads facts
            with contextlib.suppress(asyncio.CancelledError):
                await first
            assert first.cancelled()
            # the commands that wait on that connect, and the ones after: bounded errors
            others = await bounded(asyncio.gather(*(mux.execute("GET", f"k{i}")
                                                    for i in range(10)),
                                                  return_exceptions=True))
            assert all(isinstance(e, RedisConnectionError | RedisTimeoutError)
                       for e in others), others
            target.ep, target.gate = real_ep(real), None
            assert await works(mux)
        finally:
            await mux.close()


async def test_commands_fail_fast_while_redis_restarts_then_work_again() -> None:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    srv = RedisServer()
    srv.start()
    mux = RedisMux(real_ep(srv), timeout=TIMEOUT)
    try:
        assert await bounded(mux.execute("SET", "k", "v")) == "OK"
        srv.stop()
        for _ in range(3):  # down: each command fails at once (connection refused)
            with pytest.raises(RedisConnectionError):
                await bounded(mux.execute("GET", "k"))
        srv.start()  # same port and password
        assert await works(mux)
        assert await bounded(mux.execute("SET", "k", "w")) == "OK"
        assert await bounded(mux.execute("GET", "k")) == "w"
    finally:
        await mux.close()
        srv.cleanup()


@pytest.mark.parametrize("password", [None, "x"], ids=["no-auth", "auth"])
async def test_a_server_that_never_answers_times_commands_out(
        real: RedisServer, password: str | None) -> None:
    async with FakeServer("silent") as fake:
        target = Target(Endpoint(port=fake.port, password=password))
        mux = RedisMux(target, timeout=TIMEOUT)
        try:
            # without AUTH the connect succeeds and the watchdog ends the command; with AUTH
            # the connect itself times out
            results = await bounded(asyncio.gather(*(mux.execute("INCR", "n")
                                                     for _ in range(5)),
                                                   return_exceptions=True))
            assert all(isinstance(e, RedisTimeoutError) for e in results), results
            target.ep = real_ep(real)
            assert await works(mux)
        finally:
            await mux.close()


async def test_a_reset_mid_reply_fails_the_commands_in_flight_and_the_next_reconnects(
        real: RedisServer) -> None:
    async with FakeServer("reset") as fake:
        target = Target(Endpoint(port=fake.port))
        mux = RedisMux(target, timeout=5.0)  # the reset, not the watchdog, ends them
        try:
            inflight = [asyncio.create_task(mux.execute("GET", f"k{i}")) for i in range(3)]
            await until(lambda: mux._conn is not None and bool(mux._conn.parser._buf),
                        "half a reply")
            fake.reset_now.set()
            results = await bounded(asyncio.gather(*inflight, return_exceptions=True))
            assert all(isinstance(e, RedisConnectionError) for e in results), results
            target.ep = real_ep(real)
            assert await bounded(mux.execute("SET", "r", "after")) == "OK"
            # nothing of the half reply is left over: replies still match their commands
            assert await bounded(mux.execute_many([["GET", "r"], ["ECHO", "x"]])) == \
                ["after", "x"]
        finally:
            await mux.close()


async def test_close_during_a_connect_ends_the_commands_waiting_on_it() -> None:
    async with FakeServer("silent") as fake:
        mux = RedisMux(Endpoint(port=fake.port, password="x"), timeout=60.0)
        waiting = asyncio.create_task(mux.execute("PING"))
        await bounded(fake.accepted.wait())
        await bounded(mux.close())  # not the 60 s connect timeout
        with pytest.raises(RedisConnectionError):
            await bounded(waiting)
        assert mux._connecting is None and mux._conn is None
