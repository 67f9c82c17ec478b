"""The REST transport under ``controller.adapters.ari.client``: one small interface, on aiohttp.

``RestTransport.request(method, target, body, timeout=...)`` sends one request (``target``:
the encoded path and query, relative to ``/ari``) and returns ``(status, body bytes)`` for any
HTTP answer, error statuses included. No answer at all raises ``TransportError`` (connect
refused, connection lost, malformed answer; ``reason`` is short and header-free) or
``TimeoutError`` (no whole answer within ``timeout``, waiting for a connection included).
The client maps both to ``AriUnavailable``, statuses to ``controller.adapters.ari.errors``.

``AiohttpTransport`` is the implementation: aiohttp's keep-alive pool. (Our own HTTP/1.1
pool, ``controller/adapters/ari/http.py``, was deleted: it saved too little controller CPU per call
for the code it was, README "Performance".)
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Mapping
from typing import Any, Final, Protocol
from urllib.parse import quote_plus

import aiohttp
from yarl import URL

__all__ = ["CONNECTS_AT_ONCE", "QUERY_SAFE", "AiohttpTransport", "BoundedConnector",
           "RestTransport", "TransportError", "connect_reason", "encode_query"]

QUERY_SAFE: Final = "?/:@!$'()*,"
"""Characters left as they are in query keys and values: what yarl (so aiohttp) leaves, i.e.
RFC 3986 query characters minus the form delimiters ``&+;=``. Space becomes ``+``."""


def encode_query(params: Mapping[str, str]) -> str:
    """``k=v&...`` form-encoded as yarl does (space -> ``+``, ``+&=#%;`` escaped, UTF-8)."""
    return "&".join(f"{quote_plus(k, safe=QUERY_SAFE)}={quote_plus(v, safe=QUERY_SAFE)}"
                    for k, v in params.items())


def connect_reason(e: OSError) -> str:
    """``cannot connect: Connection refused`` and the like (no address, no URL)."""
    if isinstance(e, ssl.SSLError):
        text = f"TLS {e.reason or type(e).__name__}"
    elif isinstance(e, socket.gaierror) or not e.errno:
        text = e.strerror or type(e).__name__
    else:
        text = os.strerror(e.errno)
    return f"cannot connect: {text}"


class TransportError(Exception):
    """No (complete, valid) HTTP answer. ``reason`` is short, safe to log, header-free."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RestTransport(Protocol):
    """Keep-alive HTTP to one ARI base URL (see the module docstring)."""

    @property
    def closed(self) -> bool: ...

    async def request(self, method: str, target: str, body: bytes | None, *,
                      timeout: float) -> tuple[int, bytes]: ...

    async def close(self) -> None: ...


_JSON: Final = {"Content-Type": "application/json"}

CONNECTS_AT_ONCE: Final = 8
"""Asterisk's HTTP server listens with a backlog of 10: a burst of 50 new connections had SYNs
dropped and retried a second later. New connections are opened at most 8 at a time."""


class BoundedConnector(aiohttp.TCPConnector):
    """aiohttp's connector, opening at most ``connects_at_once`` connections at a time (the
    requests beyond wait their turn, within their own timeout)."""

    def __init__(self, *, connects_at_once: int = CONNECTS_AT_ONCE, **kw: Any) -> None:
        super().__init__(**kw)
        self._connecting = asyncio.Semaphore(connects_at_once)

    async def _create_connection(self, req: Any, traces: Any, timeout: Any) -> Any:
        async with self._connecting:
            return await super()._create_connection(req, traces, timeout)


class AiohttpTransport:
    """``RestTransport`` on an aiohttp ``ClientSession`` of its own (the event websocket has
    another). aiohttp resends an idempotent request once if a reused keep-alive socket turns
    out closed; a POST is never sent twice. ``keepalive`` stays below Asterisk's http.conf
    ``session_keep_alive`` (15 s), so we never reuse a socket the server is about to close.
    Must be created in the running loop."""

    def __init__(self, api_url: str, headers: Mapping[str, str], *, timeout: float = 5.0,
                 limit: int = 100, keepalive: float = 10.0) -> None:
        self._base = api_url.rstrip("/")
        self._timeout = timeout
        self._session = aiohttp.ClientSession(
            connector=BoundedConnector(limit=limit, keepalive_timeout=keepalive,
                                       ttl_dns_cache=300),
            headers=dict(headers), timeout=aiohttp.ClientTimeout(total=timeout),
            skip_auto_headers=("User-Agent",))

    @property
    def closed(self) -> bool:
        return self._session.closed

    async def request(self, method: str, target: str, body: bytes | None, *,
                      timeout: float) -> tuple[int, bytes]:
        kw: dict[str, object] = {}
        if body is not None:
            kw["data"] = body
            kw["headers"] = _JSON
        if timeout != self._timeout:
            kw["timeout"] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with self._session.request(method, URL(self._base + target, encoded=True),
                                             **kw) as resp:  # type: ignore[arg-type]
                return resp.status, await resp.read()
        except TimeoutError:  # aiohttp's ServerTimeoutError included
            raise
        except aiohttp.ClientConnectorError as e:
            raise TransportError(connect_reason(e.os_error)) from None
        except aiohttp.ServerDisconnectedError:
            raise TransportError("server disconnected") from None
        except aiohttp.ClientOSError as e:
            raise TransportError(f"{type(e).__name__}: {e.strerror}" if e.strerror
                                 else type(e).__name__) from None
        except aiohttp.ClientError as e:  # a malformed answer, a cut body...
            raise TransportError(type(e).__name__) from None

    async def close(self) -> None:
        if not self._session.closed:
            await self._session.close()
