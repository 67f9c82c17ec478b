"""The hot-path Redis runner (controller/adapters/redis/runner.py, on redis-py) held to its contract
against a real redis-server: the replies' shapes, the error classes, and the faults, each
bounded: a command cancelled midway, Redis restarting, a server that never answers, a reset
mid-reply, a full pool; on asyncio's loop and on uvloop. (The same tests held our own
pipelined connection, controller/adapters/redis/mux.py, to this contract before it was deleted.)"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redisproc import REDIS_SERVER, RedisServer

from controller.adapters.redis import connect
from controller.adapters.redis.runner import CommandRunner, RedisPyRunner, Script, resp2
from controller.tools import loops

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


def url(port: int, password: str) -> str:
    return f"redis://:{password}@127.0.0.1:{port}/0"


@contextlib.asynccontextmanager
async def runner_for(port: int, password: str, **kw: Any) -> AsyncIterator[CommandRunner]:
    client = connect.client(url(port, password), timeout=TIMEOUT, **kw)
    r = RedisPyRunner(client)
    try:
        yield r
    finally:
        await r.close()
        await connect.aclose(client)


class Fake:
    """A TCP server on 127.0.0.1 in front of the real Redis; ``mode`` (read at each new
    connection): ``proxy`` pipes bytes to Redis, ``silent`` reads and never writes, ``reset``
    answers with half a reply, then resets the connection (RST) when ``reset_now`` is set."""

    def __init__(self, real: RedisServer, mode: str) -> None:
        self.real = real
        self.mode = mode
        self.accepted = asyncio.Event()
        self.half_sent = asyncio.Event()
        self.reset_now = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0
        self._tasks: set[asyncio.Future[Any]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Fake:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        if hasattr(self.server, "close_clients"):
            self.server.close_clients()
        for t in list(self._tasks):
            t.cancel()
        for w in self._writers:  # every socket of ours closed before the loop ends
            w.transport.abort()
        await asyncio.sleep(0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.set()
        self._writers.append(writer)
        mode = self.mode
        try:
            if mode == "proxy":
                up_r, up_w = await asyncio.open_connection("127.0.0.1", self.real.port)
                self._writers.append(up_w)
                a = asyncio.ensure_future(self._pipe(reader, up_w))
                b = asyncio.ensure_future(self._pipe(up_r, writer))
                self._tasks |= {a, b}
                try:
                    await asyncio.wait((a, b), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    a.cancel()
                    b.cancel()
                    up_w.close()
            elif mode == "reset":
                await reader.read(1)
                writer.write(b"$10\r\nhel")
                await writer.drain()
                self.half_sent.set()
                await self.reset_now.wait()
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            else:
                while await reader.read(4096):
                    pass
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()


async def bounded(aw: Awaitable[Any]) -> Any:
    """``aw``'s result or its Redis error; a hang past BOUND fails the test."""
    try:
        async with asyncio.timeout(BOUND):
            return await aw
    except TimeoutError:
        raise AssertionError(f"a Redis command did not end within {BOUND} s") from None


async def works(r: CommandRunner) -> bool:
    """The runner answers again (a reconnect after a fault), within BOUND."""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        try:
            if await bounded(r.execute("PING")) in ("PONG", True):
                return True
        except (RedisConnectionError, RedisTimeoutError):
            await asyncio.sleep(0.05)
    return False


FAULTS = (RedisConnectionError, RedisTimeoutError)


# ---------------------------------------------------------------------------- contract


def test_resp3_replies_take_resp2_shapes() -> None:
    assert resp2({"a": "1", "b": {"c": 2}}) == ["a", "1", "b", ["c", 2]]
    assert resp2([1.5, None, True, "x"]) == ["1.5", None, 1, "x"]
    assert sorted(resp2({"m1", "m2"})) == ["m1", "m2"]


async def test_replies_have_resp2_shapes_and_errors_redis_py_classes(real: RedisServer
                                                                     ) -> None:
    async with runner_for(real.port, real.password) as r:
        key = "t:"
        cmds: list[list[Any]] = [
            ["DEL", f"{key}h", f"{key}z", f"{key}s"], ["HSET", f"{key}h", "a", "1", "b", "é"],
            ["ZADD", f"{key}z", "1733000000.25", "u"], ["SADD", f"{key}s", "m"],
            ["SET", f"{key}k", "v", "EX", 60]]
        assert await r.execute_many(cmds) == [0, 2, 1, 1, "OK"]
        got = await r.execute_many([
            ["EXISTS", f"{key}h"], ["ZSCORE", f"{key}z", "u"], ["HGETALL", f"{key}h"],
            ["HGETALL", f"{key}none"], ["GET", f"{key}none"], ["SMEMBERS", f"{key}s"],
            ["INCR", f"{key}n"]])
        assert got == [1, "1733000000.25", ["a", "1", "b", "é"], [], None, ["m"], 1]
        # an error reply: ResponseError, and the connection goes on
        with pytest.raises(ResponseError):
            await r.execute("INCR", f"{key}h")
        mixed = await r.execute_many([["INCR", f"{key}h"], ["GET", f"{key}k"]],
                                     raise_errors=False)
        assert isinstance(mixed[0], ResponseError) and mixed[1] == "v"
        # a script by SHA1, loaded again after the server forgot it (NOSCRIPT)
        s = Script("return {redis.call('INCR', KEYS[1]), ARGV[1], redis.call('GET', KEYS[2])}")
        assert await r.evalsha(s, [f"{key}n", f"{key}k"], ["x"]) == [2, "x", "v"]
        assert await r.execute("SCRIPT", "FLUSH") == "OK"
        assert await r.evalsha(s, [f"{key}n", f"{key}k"], ["y"]) == [3, "y", "v"]
        assert await r.execute_many([]) == []


@pytest.mark.parametrize("loop", loops.CHOICES)
def test_it_works_on_both_event_loops(real: RedisServer, loop: str) -> None:
    async def main() -> list[Any]:
        async with runner_for(real.port, real.password) as r:
            await bounded(r.execute("SET", "loop", loop))
            return await bounded(asyncio.gather(  # concurrent: not ordered with redis-py
                r.execute("GET", "loop"), r.execute_many([["PING"], ["ECHO", "é"]])))

    assert loops.run(main(), loop) == [loop, ["PONG", "é"]]


# ---------------------------------------------------------------------------- faults


async def test_a_cancelled_command_does_not_jam_the_commands_after_it(
        real: RedisServer) -> None:
    async with Fake(real, "silent") as fake, runner_for(fake.port, real.password) as r:
        first = asyncio.create_task(r.execute("PING"))
        await bounded(fake.accepted.wait())
        first.cancel()  # e.g. a call task cancelled while it loads facts
        with contextlib.suppress(asyncio.CancelledError):
            await first
        assert first.cancelled()
        others = await bounded(asyncio.gather(*(r.execute("GET", f"k{i}") for i in range(10)),
                                              return_exceptions=True))
        assert all(isinstance(e, FAULTS) for e in others), others
        fake.mode = "proxy"
        assert await works(r)


async def test_commands_fail_fast_while_redis_restarts_then_work_again() -> None:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    srv = RedisServer()
    srv.start()
    try:
        async with runner_for(srv.port, srv.password) as r:
            assert await bounded(r.execute("SET", "k", "v")) == "OK"
            srv.stop()
            for _ in range(3):  # down: each command fails at once (connection refused)
                with pytest.raises(RedisConnectionError):
                    await bounded(r.execute("GET", "k"))
            srv.start()  # same port and password
            assert await works(r)
            assert await bounded(r.execute("SET", "k", "w")) == "OK"
            assert await bounded(r.execute("GET", "k")) == "w"
    finally:
        srv.cleanup()


async def test_a_server_that_never_answers_times_commands_out(real: RedisServer) -> None:
    async with Fake(real, "silent") as fake, runner_for(fake.port, real.password) as r:
        t0 = time.monotonic()
        results = await bounded(asyncio.gather(*(r.execute("INCR", "n") for _ in range(5)),
                                               return_exceptions=True))
        assert all(isinstance(e, FAULTS) for e in results), results
        assert time.monotonic() - t0 < BOUND
        fake.mode = "proxy"
        assert await works(r)


async def test_a_reset_mid_reply_fails_the_commands_in_flight_and_the_next_reconnects(
        real: RedisServer) -> None:
    async with Fake(real, "reset") as fake, runner_for(fake.port, real.password) as r:
        inflight = [asyncio.create_task(r.execute("GET", f"k{i}")) for i in range(3)]
        await bounded(fake.half_sent.wait())
        fake.mode = "proxy"
        fake.reset_now.set()
        results = await bounded(asyncio.gather(*inflight, return_exceptions=True))
        assert all(isinstance(e, RedisError) for e in results), results
        assert await works(r)
        assert await bounded(r.execute("SET", "r", "after")) == "OK"
        # nothing of the half reply is left over: replies still match their commands
        assert await bounded(r.execute_many([["GET", "r"], ["ECHO", "x"]])) == ["after", "x"]


async def test_a_full_pool_makes_commands_wait_at_most_the_timeout(
        real: RedisServer) -> None:
    """redis-py's blocking pool: past max_connections a command waits for a free connection
    at most the timeout (then ConnectionError), it does not queue forever."""
    async with Fake(real, "silent") as fake, \
            runner_for(fake.port, real.password, max_connections=2) as r:
        t0 = time.monotonic()
        results = await bounded(asyncio.gather(*(r.execute("PING") for _ in range(4)),
                                               return_exceptions=True))
        assert all(isinstance(e, FAULTS) for e in results), results
        assert time.monotonic() - t0 < 4 * TIMEOUT
        fake.mode = "proxy"
        assert await works(r)


def test_the_store_client_bounds_every_step() -> None:
    """The redis-py settings the runner relies on (controller/adapters/redis/connect.py)."""
    c = connect.client("redis://127.0.0.1:1/0", timeout=0.7, max_connections=5)
    pool = c.connection_pool
    assert isinstance(pool, aioredis.BlockingConnectionPool)
    assert pool.timeout == 0.7 and pool.max_connections == 5
    kw = pool.connection_kwargs
    assert kw["socket_timeout"] == 0.7 and kw["socket_connect_timeout"] == 0.7
