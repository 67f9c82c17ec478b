"""A lean HTTP/1.1 keep-alive client on asyncio, for the ARI REST hot path.

aiohttp costs ~140 us of CPU per small request; this costs a fraction of that by doing only
what ARI needs: one request at a time per connection (no pipelining), a LIFO pool of idle
keep-alive sockets (at most ``limit`` connections, waiters served FIFO), request deadlines
watched by one timer per pool, reads into one reused buffer, and a response parser that
handles ``Content-Length``, chunked and read-until-close bodies.

The pure parts (``ResponseParser``, ``RequestBuilder``, ``encode_query``, ``parse_base_url``,
``may_retry``) do no I/O and are unit-tested on their own. Error texts (``HttpError.reason``)
are short and never contain headers, so credentials cannot leak through them.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlsplit

from controller.ari.transport import QUERY_SAFE, TransportError, connect_reason, encode_query

__all__ = [
    "IDEMPOTENT",
    "QUERY_SAFE",
    "ConnectFailed",
    "Disconnected",
    "Endpoint",
    "HttpError",
    "HttpParseError",
    "HttpPool",
    "RequestBuilder",
    "Response",
    "ResponseParser",
    "connect_reason",
    "encode_query",
    "may_retry",
    "parse_base_url",
]

IDEMPOTENT: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
"""Methods we may send twice (a reused socket failed after the request was written)."""

_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_METHODS: Final = IDEMPOTENT | _BODY_METHODS
_MAX_HEAD: Final = 64 * 1024
_MAX_LINE: Final = 8 * 1024
_TARGET_OK = re.compile(r"[!-~]+").fullmatch  # visible ASCII only: no space, CR, LF, NUL
_HEADER_VALUE_BAD = re.compile(r"[\r\n\0]").search
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+").fullmatch
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}").fullmatch
_RECV_BUFFER: Final = 64 * 1024


# ---------------------------------------------------------------------------- errors


class HttpError(TransportError):
    """No (complete, valid) HTTP answer. ``reason`` is short, safe to log, header-free."""


class HttpParseError(HttpError):
    """The server's bytes are not a valid HTTP/1.x response."""


class ConnectFailed(HttpError):
    """The TCP (or TLS) connection could not be opened."""


class Disconnected(HttpError):
    """The connection closed before a whole response arrived.

    ``started``: some bytes of the response had arrived (the request was surely processed).
    """

    def __init__(self, reason: str = "server disconnected", *, started: bool = False) -> None:
        super().__init__(reason)
        self.started = started


def _lost_reason(exc: BaseException | None) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    if exc is not None:
        return f"server disconnected ({type(exc).__name__})"
    return "server disconnected"


def may_retry(method: str, *, reused: bool, sent: bool, response_started: bool) -> bool:
    """Whether a request that lost its connection may be sent again on a fresh one.

    Only a *reused* keep-alive socket qualifies (the server may have closed it while idle),
    and only if no byte of the response arrived. If none of our bytes went out (the socket
    was seen closed before writing, or the write failed at once) any method may be resent;
    once written, only idempotent methods: a POST may have been executed.
    """
    if not reused or response_started:
        return False
    return not sent or method in IDEMPOTENT


# ---------------------------------------------------------------------------- URLs


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to connect and what to put in ``Host``, from a base URL."""

    tls: bool
    host: str
    port: int
    host_header: str
    base_path: str
    """Path prefix without a trailing slash (``/ari``), prepended to every request path."""


def parse_base_url(url: str) -> Endpoint:
    """``http(s)://host[:port][/prefix]`` -> Endpoint. Userinfo is dropped, never sent."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {scheme!r} (http or https)")
    host = parts.hostname
    if not host:
        raise ValueError("URL without a host")
    tls = scheme == "https"
    default = 443 if tls else 80
    port = parts.port or default
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    return Endpoint(tls, host, port, host_header, parts.path.rstrip("/"))


# ---------------------------------------------------------------------------- requests


class RequestBuilder:
    """The bytes of one request; the fixed headers (Host, Authorization, ...) are built once."""

    __slots__ = ("_fixed",)

    def __init__(self, host_header: str, headers: Mapping[str, str] | None = None) -> None:
        fixed = {"Host": host_header, **(headers or {})}
        for name, value in fixed.items():
            if not _TOKEN(name) or _HEADER_VALUE_BAD(value):
                raise ValueError("invalid header name or value")  # value not shown: secrets
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())

    def build(self, method: str, target: str, body: bytes | None = None,
              content_type: str = "application/json") -> bytes:
        """``target`` is the encoded path and query; stray unsafe characters get escaped."""
        if not _TARGET_OK(target):
            target = quote(target, safe="!#$%&'()*+,/:;=?@[]~")
        if method not in _METHODS and not _TOKEN(method):
            raise ValueError(f"invalid HTTP method {method!r}")
        if body is None:
            end = "Content-Length: 0\r\n\r\n" if method in _BODY_METHODS else "\r\n"
            return f"{method} {target} HTTP/1.1\r\n{self._fixed}{end}".encode("ascii")
        if _HEADER_VALUE_BAD(content_type):
            raise ValueError("invalid Content-Type")
        head = (f"{method} {target} HTTP/1.1\r\n{self._fixed}Content-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        return head.encode("ascii") + body


# ---------------------------------------------------------------------------- responses


@dataclass(slots=True)
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    """Lower-cased names; repeated headers joined with ``", "``."""
    body: bytes
    keep_alive: bool
    """The connection may carry another request after this response."""


_HEAD, _LENGTH, _CHUNK_SIZE_LINE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _UNTIL_CLOSE = range(7)


class ResponseParser:
    """Incremental HTTP/1.x response parser: ``feed`` bytes cut anywhere, get whole responses.

    Bodies: ``Transfer-Encoding: chunked`` (extensions and trailers ignored), else
    ``Content-Length``, else until the connection closes (``feed_eof``). 1xx interim
    responses are skipped; 204 and 304 have no body. Raises ``HttpParseError``. Not for
    answers to HEAD requests (their Content-Length announces a body that is not sent).
    """

    __slots__ = ("_buf", "_chunks", "_cur", "_remaining", "_started", "_state", "_trailer")

    def __init__(self) -> None:
        self._buf = b""
        self._state = _HEAD
        self._started = False
        self._remaining = 0
        self._trailer = 0
        self._chunks: list[bytes] = []
        self._cur: Response | None = None

    @property
    def started(self) -> bool:
        """Some bytes of a response not yet complete have arrived."""
        return self._started

    def feed(self, data: bytes) -> list[Response]:
        """Consume ``data``; return the responses it completed (usually zero or one)."""
        if self._buf:
            data = self._buf + data
            self._buf = b""
        out: list[Response] = []
        pos = 0
        end = len(data)
        while pos < end:
            st = self._state
            if st == _HEAD:
                if not self._started and data.startswith(b"\r\n", pos):
                    pos += 2  # tolerate stray blank lines between responses
                    continue
                self._started = True
                i = data.find(b"\r\n\r\n", pos)
                if i < 0 or i - pos > _MAX_HEAD:
                    if end - pos > _MAX_HEAD:
                        raise HttpParseError("response head too large")
                    self._buf = data[pos:]
                    break
                self._start(data[pos:i])
                pos = i + 4
                if self._cur is not None and self._state == _HEAD:  # no body
                    out.append(self._finish())
            elif st == _LENGTH or st == _CHUNK_DATA:
                n = self._remaining
                if end - pos >= n:
                    self._chunks.append(data[pos:pos + n])
                    pos += n
                    self._remaining = 0
                    if st == _LENGTH:
                        out.append(self._finish())
                    else:
                        self._state = _CHUNK_END
                else:
                    self._chunks.append(data[pos:] if pos else data)
                    self._remaining = n - (end - pos)
                    pos = end
            elif st == _CHUNK_SIZE_LINE or st == _TRAILER:
                i = data.find(b"\r\n", pos)
                if i < 0:
                    if end - pos > _MAX_LINE:
                        raise HttpParseError("chunk line too long")
                    self._buf = data[pos:]
                    break
                line = data[pos:i]
                pos = i + 2
                if st == _CHUNK_SIZE_LINE:
                    self._chunk_size(line)
                elif not line:
                    out.append(self._finish())
                else:
                    self._trailer += len(line)
                    if self._trailer > _MAX_HEAD:
                        raise HttpParseError("trailers too large")
            elif st == _CHUNK_END:
                if end - pos < 2:
                    if data[pos] != 13:
                        raise HttpParseError("bad chunk framing")
                    self._buf = data[pos:]
                    break
                if data[pos] != 13 or data[pos + 1] != 10:
                    raise HttpParseError("bad chunk framing")
                pos += 2
                self._state = _CHUNK_SIZE_LINE
            else:  # _UNTIL_CLOSE
                self._chunks.append(data[pos:] if pos else data)
                pos = end
        return out

    def feed_eof(self) -> Response | None:
        """The connection closed: the read-until-close response it completes, if any.

        None otherwise (check ``started`` to tell a clean close from a cut response).
        """
        if self._state == _UNTIL_CLOSE:
            return self._finish()
        return None

    # ---------------------------------------------------------------- internals

    def _start(self, head: bytes) -> None:
        """Parse a status line + headers; set the body state (``_HEAD`` again: no body)."""
        text = head.decode("latin-1")
        lines = text.split("\r\n")
        line = lines[0]
        if (len(line) < 12 or not line.startswith("HTTP/1.") or line[7] not in "01"
                or line[8] != " " or not line[9:12].isdigit() or not line[9:12].isascii()
                or (len(line) > 12 and line[12] != " ")):
            raise HttpParseError("malformed status line")
        status = int(line[9:12])
        if status < 100:
            raise HttpParseError("malformed status line")
        headers: dict[str, str] = {}
        last = ""
        for raw in lines[1:]:
            if raw[:1] in (" ", "\t"):  # obsolete line folding: continues the last value
                if not last:
                    raise HttpParseError("malformed header line")
                headers[last] = f"{headers[last]} {raw.strip()}"
                continue
            name, sep, value = raw.partition(":")
            name = name.strip().lower()
            if not sep or not name:
                raise HttpParseError("malformed header line")
            value = value.strip(" \t")
            old = headers.get(name)
            headers[name] = value if old is None else f"{old}, {value}"
            last = name
        if status < 200:
            if status == 101:
                raise HttpParseError("unexpected protocol switch")
            self._state = _HEAD  # interim (100 Continue, 102, 103): the real one follows
            return
        conn = headers.get("connection")
        if conn is None:
            keep_alive = line[7] == "1"
        else:
            tokens = {t.strip().lower() for t in conn.split(",")}
            keep_alive = "close" not in tokens if line[7] == "1" else "keep-alive" in tokens
        self._cur = Response(status, line[13:], headers, b"", keep_alive)
        self._chunks = []
        te = headers.get("transfer-encoding")
        if status == 204 or status == 304:
            self._state = _HEAD
        elif te is not None:
            if te.rsplit(",", 1)[-1].strip().lower() == "chunked":
                self._state = _CHUNK_SIZE_LINE
                self._trailer = 0
            else:  # another coding last: the body ends with the connection
                self._state = _UNTIL_CLOSE
                self._cur.keep_alive = False
        elif "content-length" in headers:
            n = _content_length(headers["content-length"])
            if n:
                self._remaining = n
                self._state = _LENGTH
            else:
                self._state = _HEAD
        else:
            self._state = _UNTIL_CLOSE
            self._cur.keep_alive = False

    def _chunk_size(self, line: bytes) -> None:
        size = line.split(b";", 1)[0].strip(b" \t")
        if not _CHUNK_SIZE(size):
            raise HttpParseError("bad chunk size")
        n = int(size, 16)
        if n:
            self._remaining = n
            self._state = _CHUNK_DATA
        else:
            self._state = _TRAILER

    def _finish(self) -> Response:
        r = self._cur
        assert r is not None
        chunks = self._chunks
        if chunks:
            r.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self._chunks = []
        self._cur = None
        self._state = _HEAD
        self._started = False
        return r


def _content_length(value: str) -> int:
    """One non-negative decimal (repeats allowed if equal: ``5, 5``), else HttpParseError."""
    v = value
    if not (v.isdigit() and v.isascii()):
        values = {x.strip() for x in value.split(",")}
        if len(values) != 1:
            raise HttpParseError("bad Content-Length")
        v = values.pop()
        if not (v.isdigit() and v.isascii()):
            raise HttpParseError("bad Content-Length")
    if len(v) > 15:
        raise HttpParseError("bad Content-Length")
    return int(v)


# ---------------------------------------------------------------------------- connections


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


_EARLY: Final = 0.001
"""The pool timer expires deadlines this much early rather than re-arm for a hair."""


class _Conn(asyncio.BufferedProtocol):
    """One keep-alive connection; ``waiter`` gets the response to the request in flight.

    A BufferedProtocol: the transport reads into the pool's one receive buffer (each read is
    consumed at once), instead of allocating a fresh 256 KiB bytes object per read, which
    cost more CPU than everything else in a request.
    """

    __slots__ = ("closed", "idle_since", "parser", "pool", "transport", "used", "waiter")

    def __init__(self, pool: HttpPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = ResponseParser()
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.used = 0
        """Responses received on this connection (> 0: a reused keep-alive socket)."""
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.pool._conns.add(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.pool._rbuf

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.pool._rbuf[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        try:
            got = self.parser.feed(data)
        except HttpParseError as e:
            self._abort(e)
            return
        if got:
            w, self.waiter = self.waiter, None
            if w is not None and not w.done():
                w.set_result(got[0])
            if w is None or len(got) > 1:  # an answer nobody asked for: out of step
                self._abort(None)

    def eof_received(self) -> bool:
        self.closed = True
        r = self.parser.feed_eof()
        if r is not None:
            w, self.waiter = self.waiter, None
            if w is not None and not w.done():
                w.set_result(r)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        w, self.waiter = self.waiter, None
        if w is not None and not w.done():
            r = self.parser.feed_eof()
            if r is not None:
                w.set_result(r)
            else:
                w.set_exception(Disconnected(_lost_reason(exc), started=self.parser.started))
        self.pool._lost(self)

    def _abort(self, exc: HttpError | None) -> None:
        self.closed = True
        w, self.waiter = self.waiter, None
        if exc is not None and w is not None and not w.done():
            w.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


CONNECTS_AT_ONCE = 8


class HttpPool:
    """Keep-alive connections to one HTTP(S) origin; ``await pool.request(...)``.

    At most ``limit`` connections; beyond, requests wait FIFO for one. A socket idle for
    more than ``keepalive`` seconds is closed instead of reused (keep it below the server's
    keep-alive timeout). Every request, waiting for a connection included, ends within
    ``timeout`` seconds (``TimeoutError``): deadlines go in a queue watched by one timer,
    armed at the oldest (a timer per request cost ~4 us of loop overhead each). Must be
    created inside the running loop.
    """

    def __init__(self, base_url: str, headers: Mapping[str, str] | None = None, *,
                 timeout: float = 5.0, limit: int = 100, keepalive: float = 10.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        ep = parse_base_url(base_url)
        self.endpoint = ep
        self.timeout = timeout
        self.limit = limit
        self.keepalive = keepalive
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._base = ep.base_path
        self._ssl = (ssl_context or ssl.create_default_context()) if ep.tls else None
        self._builder = RequestBuilder(ep.host_header, headers)
        self._idle: list[_Conn] = []  # LIFO: the most recently used first
        self._waiters: deque[asyncio.Future[_Conn | None]] = deque()
        self._conns: set[_Conn] = set()  # transports not yet lost
        self._count = 0  # connections open or being opened
        self._all_lost: asyncio.Future[None] | None = None
        self._deadlines: deque[tuple[float, asyncio.Future[Any]]] = deque()  # oldest first
        self._timer: asyncio.TimerHandle | None = None
        self._rbuf = memoryview(bytearray(_RECV_BUFFER))  # shared: reads are consumed at once
        # Asterisk's HTTP server listens with a backlog of 10: a burst of 50 new connections
        # had some SYNs dropped and retried a second later. Open at most 8 at a time.
        self._connecting = asyncio.Semaphore(CONNECTS_AT_ONCE)

    def __repr__(self) -> str:
        return (f"HttpPool({self.endpoint.host_header}, open={self._count}, "
                f"idle={len(self._idle)})")

    async def request(self, method: str, target: str, body: bytes | None, *,
                      timeout: float) -> tuple[int, bytes]:
        """``controller.ari.transport.RestTransport``: ``(status, body)`` of one request."""
        resp = await self.send(method, target, body, timeout=timeout)
        return resp.status, resp.body

    async def send(self, method: str, path: str, body: bytes | None = None, *,
                   content_type: str = "application/json",
                   timeout: float | None = None) -> Response:
        """Send one request (``path``: encoded, relative to the base path, with query).

        Raises ``HttpError`` subclasses and ``TimeoutError``.
        """
        if self.closed:
            raise HttpError("client closed")
        loop = self._loop
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        data = self._builder.build(method, self._base + path, body, content_type)
        fresh = False
        while True:
            conn = await self._acquire(deadline, fresh)
            sent = False
            try:
                tr = conn.transport
                if conn.closed or tr is None or tr.is_closing() or conn.parser.started:
                    raise Disconnected(started=False)  # nothing sent: may go on a fresh one
                fut: asyncio.Future[Response] = loop.create_future()
                conn.waiter = fut
                tr.write(data)
                sent = not tr.is_closing()  # closing at once: the write failed, nothing sent
                self._watch(deadline, fut)
                resp = await fut
            except Disconnected as e:
                self._discard(conn)
                if self.closed:
                    raise HttpError("client closed") from None
                if not fresh and may_retry(method, reused=conn.used > 0, sent=sent,
                                           response_started=e.started):
                    fresh = True
                    continue
                raise
            except BaseException:
                self._discard(conn)  # timeout or cancelled mid-exchange: state unknown
                raise
            conn.used += 1
            if resp.keep_alive and not conn.closed:
                self._release(conn)
            else:
                self._discard(conn)
            return resp

    async def close(self, grace: float = 1.0) -> None:
        """Close every connection; requests in flight fail. Returns within ~``grace`` s."""
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadlines.clear()
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_exception(HttpError("client closed"))
        self._idle.clear()
        conns = list(self._conns)
        for c in conns:
            c.closed = True
            if c.transport is not None:
                c.transport.close()
        if self._conns:
            self._all_lost = self._loop.create_future()
            await asyncio.wait([self._all_lost], timeout=grace)
            for c in list(self._conns):
                if c.transport is not None:
                    c.transport.abort()

    # ---------------------------------------------------------------- pool internals

    async def _acquire(self, deadline: float, fresh: bool) -> _Conn:
        """An idle live connection, else a new one (``fresh``: always a new one)."""
        if self.closed:
            raise HttpError("client closed")
        idle = self._idle
        if idle:
            if fresh:  # a kept socket went stale: the others probably did too
                self._drop_idle()
            else:
                cutoff = self._loop.time() - self.keepalive
                while idle:
                    conn = idle.pop()
                    if conn.closed:
                        self._discard(conn)
                    elif conn.idle_since < cutoff:  # too old, and so is every one below
                        self._discard(conn)
                        self._drop_idle()
                    else:
                        return conn
        if self._count < self.limit:
            self._count += 1
        else:
            got = await self._wait_turn(deadline)
            if got is not None:
                if not fresh and not got.closed:
                    return got
                self._close(got)  # keep its slot for a new connection
        try:
            return await self._connect(deadline)
        except BaseException:
            self._free_slot()
            raise

    async def _wait_turn(self, deadline: float) -> _Conn | None:
        """Queue for a connection (or, None, for the slot of a closed one)."""
        fut: asyncio.Future[_Conn | None] = self._loop.create_future()
        self._waiters.append(fut)
        self._watch(deadline, fut)
        try:
            return await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                got = fut.result()  # handed over, but we were cancelled: pass it on
                if got is None:
                    self._free_slot()
                else:
                    self._release(got)
            raise

    def _watch(self, deadline: float, fut: asyncio.Future[Any]) -> None:
        """Fail ``fut`` with TimeoutError at ``deadline`` unless it is done by then."""
        dq = self._deadlines
        while dq and dq[0][1].done():
            dq.popleft()
        if dq and deadline < dq[-1][0]:  # out of order (a shorter timeout): its own timer
            self._loop.call_at(deadline, _expire, fut)
            return
        dq.append((deadline, fut))
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        dq = self._deadlines
        now = self._loop.time() + _EARLY
        while dq:
            deadline, fut = dq[0]
            if not fut.done():
                if deadline > now:
                    self._timer = self._loop.call_at(deadline, self._on_timer)
                    return
                fut.set_exception(TimeoutError())
            dq.popleft()

    async def _connect(self, deadline: float) -> _Conn:
        loop = self._loop
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError
        ep = self.endpoint
        try:
            async with asyncio.timeout(remaining), self._connecting:
                _, conn = await loop.create_connection(lambda: _Conn(self), ep.host, ep.port,
                                                       ssl=self._ssl)
        except TimeoutError:
            raise
        except OSError as e:
            raise ConnectFailed(connect_reason(e)) from None
        if self.closed:
            self._close(conn)
            raise HttpError("client closed")
        return conn

    def _release(self, conn: _Conn) -> None:
        """A live connection is free: to the first waiter, else to the idle stack."""
        if self.closed:
            self._close(conn)
            return
        conn.idle_since = self._loop.time()
        waiters = self._waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(conn)
                return
        self._idle.append(conn)

    def _free_slot(self) -> None:
        """A connection is gone: its slot to the first waiter, else one fewer open."""
        waiters = self._waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(None)
                return
        self._count -= 1

    def _discard(self, conn: _Conn) -> None:
        self._close(conn)
        self._free_slot()

    def _drop_idle(self) -> None:
        while self._idle:
            self._discard(self._idle.pop())

    @staticmethod
    def _close(conn: _Conn) -> None:
        conn.closed = True
        tr = conn.transport
        if tr is not None and not tr.is_closing():
            tr.close()

    def _lost(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        if not self._conns and self._all_lost is not None and not self._all_lost.done():
            self._all_lost.set_result(None)
