"""One pipelined Redis connection for the call hot path.

redis-py spends ~100 µs of CPU per command (pool checkout, per-command timeout task,
health check, RESP3 parser in Python): at a few Redis steps per call that was the largest
share of the controller's CPU per call after ARI's HTTP. RESP is ordered, so one connection
can carry any number of commands in flight: each command is written at once and its
future queued; replies resolve the queue in order. No pool, no lock, no timer per command:
one watchdog closes the connection when the oldest command has waited longer than the
timeout (on an ordered connection, everything behind it is stuck too).

Every command is bounded: a connect (Sentinel lookup, TCP, AUTH/SELECT) runs in a task of its
own, bounded by the timeout, that every command needing a connection waits on, with the same
bound, so a command cancelled while it waits never leaves the connect unfinished for the
others; a reply comes within about 1.25 x the timeout or the watchdog fails the connection.
At worst a command fails after about 2.5 x the timeout (connect, then no reply).

A ``controller.store.runner.CommandRunner`` (``CALLCTL_REDIS_TRANSPORT=own``; redis-py is the
default): the per-call steps only (leases, busy marks, facts, cursors, sticky map, call end);
everything else (pub/sub, admin, ops) stays on redis-py. Errors are redis-py's exception
classes, so callers keep catching ``RedisError``: ``ConnectionError`` (cannot connect, lost,
``READONLY`` after a Sentinel failover: the next command reconnects and asks the sentinels
again), ``TimeoutError``, ``ResponseError`` (an error reply; the connection stays usable).
Replies are decoded like redis-py's ``decode_responses=True``: bulk strings as str, integers
as int, nil as None, arrays as lists.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from controller.store.runner import Script

__all__ = ["Endpoint", "ProtocolError", "RedisMux", "RespParser", "Script", "encode"]


class ProtocolError(RedisConnectionError):
    """The server sent something that is not RESP2: the connection is dropped."""


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect (from ``redis.asyncio.connection.parse_url`` or Sentinel)."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # unix socket
    tls: bool = False
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def encode(args: Sequence[Any]) -> bytes:
    """One command as a RESP2 array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, bytes):
            b = a
        elif isinstance(a, str):
            b = a.encode()
        elif isinstance(a, bool):
            raise TypeError("a bool is not a Redis argument; send '1'/'0'")
        elif isinstance(a, int):
            b = b"%d" % a
        elif isinstance(a, float):
            b = repr(a).encode()
        else:
            raise TypeError(f"{type(a).__name__} is not a Redis argument")
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


_INCOMPLETE = object()


class RespParser:
    """RESP2 replies from a byte stream, fed in pieces of any size.

    ``feed(data)`` returns the replies completed by ``data``, in order. An error reply is
    returned as a ``ResponseError`` instance (not raised); a malformed stream raises
    ``ProtocolError``."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> list[Any]:
        self._buf += data
        out: list[Any] = []
        while True:
            start = self._pos
            value = self._parse()
            if value is _INCOMPLETE:
                self._pos = start
                break
            out.append(value)
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        return out

    def _line(self) -> bytes | None:
        end = self._buf.find(b"\r\n", self._pos)
        if end < 0:
            return None
        line = bytes(self._buf[self._pos:end])
        self._pos = end + 2
        return line

    def _parse(self) -> Any:
        line = self._line()
        if line is None:
            return _INCOMPLETE
        if not line:
            raise ProtocolError("empty RESP line")
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            n = self._int(rest)
            if n < 0:
                return None
            end = self._pos + n
            if len(self._buf) < end + 2:
                return _INCOMPLETE
            if self._buf[end:end + 2] != b"\r\n":
                raise ProtocolError("bulk string not followed by CRLF")
            value = bytes(self._buf[self._pos:end])
            self._pos = end + 2
            return value.decode(errors="replace")
        if kind == b":":
            return self._int(rest)
        if kind == b"+":
            return rest.decode(errors="replace")
        if kind == b"-":
            return ResponseError(rest.decode(errors="replace"))
        if kind == b"*":
            n = self._int(rest)
            if n < 0:
                return None
            items = []
            for _ in range(n):
                v = self._parse()
                if v is _INCOMPLETE:
                    return _INCOMPLETE
                items.append(v)
            return items
        raise ProtocolError(f"unknown RESP type {kind!r}")

    @staticmethod
    def _int(raw: bytes) -> int:
        try:
            return int(raw)
        except ValueError:
            raise ProtocolError(f"bad RESP integer {raw[:20]!r}") from None


class _Conn(asyncio.Protocol):
    def __init__(self, mux: RedisMux) -> None:
        self.mux = mux
        self.parser = RespParser()
        self.pending: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # no isinstance check: uvloop's transports do not subclass asyncio.Transport
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            replies = self.parser.feed(data)
        except ProtocolError as e:
            self.fail(e)
            return
        pending = self.pending
        for r in replies:
            if not pending:
                self.fail(ProtocolError("a reply nobody asked for"))
                return
            fut, _ = pending.popleft()
            if not fut.done():
                fut.set_result(r)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"connection lost: {exc}" if exc else
                                       "connection closed by the server"))

    def send(self, data: bytes, n: int) -> list[asyncio.Future[Any]]:
        if self.closed:  # lost between its connect and this command: nobody would answer
            raise RedisConnectionError("connection lost")
        loop = self.mux._loop()
        now = time.monotonic()
        futs = [loop.create_future() for _ in range(n)]
        self.pending.extend((f, now) for f in futs)
        assert self.transport is not None
        self.transport.write(data)
        self.mux._arm()  # no command in flight without a watchdog
        return futs

    def fail(self, exc: Exception) -> None:
        """Drop the connection: every command in flight fails with ``exc``."""
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            self.mux._lost(self)
        while self.pending:
            fut, _ = self.pending.popleft()
            if not fut.done():
                fut.set_exception(exc)


class RedisMux:
    """Commands pipelined on one connection (see the module docstring).

    ``endpoint`` is an :class:`Endpoint` or an async callable returning one (asked again at
    every reconnect: Sentinel)."""

    def __init__(self, endpoint: Endpoint | Callable[[], Awaitable[Endpoint]], *,
                 timeout: float = 1.0) -> None:
        self._endpoint = endpoint
        self.timeout = timeout
        self._conn: _Conn | None = None
        self._connecting: asyncio.Task[_Conn] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._closing = False

    @staticmethod
    def _loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    # ----------------------------------------------------------------- commands

    async def execute(self, *args: Any) -> Any:
        """One command; its reply (an error reply raises ``ResponseError``)."""
        return (await self.execute_many([args]))[0]

    async def execute_many(self, commands: Sequence[Sequence[Any]], *,
                           raise_errors: bool = True) -> list[Any]:
        """Several commands in one write (not a transaction); their replies in order.
        With ``raise_errors=False`` error replies come back as ``ResponseError`` values."""
        if not commands:
            return []
        data = b"".join(encode(c) for c in commands)
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connect()
        futs = conn.send(data, len(commands))
        replies = [await f for f in futs]
        if raise_errors:
            for r in replies:
                if isinstance(r, ResponseError):
                    self._check_readonly(conn, r)
                    raise r
        return replies

    async def evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script`` (EVALSHA; on NOSCRIPT, EVAL, which also caches it)."""
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except ResponseError as e:
            if not str(e).startswith("NOSCRIPT"):
                raise
        return await self.execute("EVAL", script.source, len(keys), *keys, *args)

    def _check_readonly(self, conn: _Conn, err: ResponseError) -> None:
        if str(err).startswith("READONLY"):  # a replica now (Sentinel failover): reconnect
            conn.fail(RedisConnectionError("the server became a replica"))
            raise RedisConnectionError("the server became a replica") from err

    # ----------------------------------------------------------------- connection

    async def _connect(self) -> _Conn:
        """The connection, opened if need be. One connect at a time, in a task of its own
        (``_opening``) that every caller waits on for at most ``timeout``: a caller cancelled
        meanwhile leaves it running for the others, and it always ends."""
        if self._closing:
            raise RedisConnectionError("client closed")
        task = self._connecting
        if task is None:
            task = self._connecting = self._loop().create_task(self._opening())
            task.add_done_callback(self._opened)
        done, _ = await asyncio.wait((task,), timeout=self.timeout)
        if not done:  # the connect task has its own bound: a safety net only
            raise RedisTimeoutError(f"cannot connect within {self.timeout:g} s")
        if task.cancelled():  # close(), or the loop shutting down
            raise RedisConnectionError("connect cancelled")
        return task.result()

    async def _opening(self) -> _Conn:
        try:
            async with asyncio.timeout(self.timeout):
                conn = await self._open()
        except TimeoutError:
            raise RedisTimeoutError(f"cannot connect within {self.timeout:g} s") from None
        except OSError as e:
            raise RedisConnectionError(
                f"cannot connect: {e.strerror or type(e).__name__}") from None
        except RedisConnectionError:
            raise
        except Exception as e:  # an AUTH/SELECT error reply, a Sentinel that does not know
            raise RedisConnectionError(str(e)) from None
        if self._closing:
            conn.fail(RedisConnectionError("client closed"))
            raise RedisConnectionError("client closed")
        self._conn = conn
        self._arm()
        return conn

    def _opened(self, task: asyncio.Task[_Conn]) -> None:
        """Whatever became of the connect, the next command may start another."""
        if self._connecting is task:
            self._connecting = None
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning

    async def _open(self) -> _Conn:
        ep = self._endpoint if isinstance(self._endpoint, Endpoint) else await self._endpoint()
        loop = self._loop()
        if ep.path:
            _, conn = await loop.create_unix_connection(lambda: _Conn(self), ep.path)
        else:
            ctx = ssl.create_default_context() if ep.tls else None
            _, conn = await loop.create_connection(lambda: _Conn(self), ep.host, ep.port,
                                                   ssl=ctx)
        setup: list[list[Any]] = []
        if ep.password is not None:
            setup.append(["AUTH", ep.username, ep.password] if ep.username else
                         ["AUTH", ep.password])
        if ep.db:
            setup.append(["SELECT", ep.db])
        try:
            if setup:
                futs = conn.send(b"".join(encode(c) for c in setup), len(setup))
                for f in futs:
                    r = await f
                    if isinstance(r, ResponseError):
                        raise RedisConnectionError(f"Redis refused the connection setup: {r}")
        except BaseException:  # refused, timed out or cancelled: no half-open connection
            conn.fail(RedisConnectionError("connection setup failed"))
            raise
        return conn

    def _lost(self, conn: _Conn) -> None:
        if self._conn is conn:
            self._conn = None

    def _arm(self) -> None:
        if self._watchdog is None and not self._closing:
            self._watchdog = self._loop().call_later(self.timeout / 4, self._check)

    def _check(self) -> None:
        """The oldest command in flight waited too long: the server is stuck or gone."""
        self._watchdog = None
        conn = self._conn
        if conn is None or conn.closed:
            return
        if conn.pending and time.monotonic() - conn.pending[0][1] > self.timeout:
            conn.fail(RedisTimeoutError(f"no reply within {self.timeout:g} s"))
            return
        self._arm()

    async def close(self) -> None:
        self._closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        connecting = self._connecting
        if connecting is not None:  # let it end (it closes what it opened) before we return
            connecting.cancel()
            await asyncio.wait((connecting,), timeout=self.timeout)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.fail(RedisConnectionError("client closed"))
            with contextlib.suppress(Exception):
                await asyncio.sleep(0)
