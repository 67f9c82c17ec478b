"""The ARI event websocket, kept connected: reconnect with backoff, resync on every connect.

``ApplicationReplaced``: another websocket registered our Stasis application on this
Asterisk. Asterisk then sends that connection every event of the app and ours none, yet
leaves ours open: deaf. We hold the node's lease (controller.cluster.manager), so we are the app's
rightful listener: the stream logs an error, closes the deaf socket and reconnects, which
takes the app back (the other connection gets the ``ApplicationReplaced``). The reconnect
backoff is not reset by a connection that was taken over (unless it lived
``_REPLACED_STABLE_AFTER``), so two listeners fighting over the app back off to the
backoff's maximum instead of spinning; ``replaced`` counts the takeovers and
``replaced_recently`` tells ``/health`` (``ari_replaced``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp

from controller import jsonx
from controller.adapters.ari.client import AriClient
from controller.adapters.ari.errors import AriError
from controller.adapters.ari.events import Event
from controller.adapters.ari.parse import parse_event
from controller.core.backoff import Backoff, ExponentialBackoff

__all__ = ["EventStream"]

log = logging.getLogger("callctl.ari.events")

_STABLE_AFTER = 1.0  # a connection that lived this long resets the backoff
_REPLACED_STABLE_AFTER = 30.0  # ...this long, if another websocket took our app over
REPLACED_HOLD_S = 60.0
"""How long after a takeover of our app ``replaced_recently`` stays true (``/health``)."""


class EventStream:
    """Reads ``/ari/events`` forever and hands each parsed event to ``on_event``.

    ``on_event`` is called synchronously in websocket order and must be fast (enqueue only).
    ``on_connect`` is awaited after each (re)connect, before any event of that connection is
    delivered: the runtime resyncs live channels there.
    """

    def __init__(self, client: AriClient, on_event: Callable[[Event], None], *,
                 on_connect: Callable[[], Awaitable[None]] | None = None,
                 backoff: Backoff | None = None, heartbeat: float = 5.0) -> None:
        self.client = client
        self.on_event = on_event
        self.on_connect = on_connect
        self.backoff: Backoff = backoff if backoff is not None else ExponentialBackoff(0.05, 5.0)
        self.heartbeat = heartbeat
        """Ping interval (s); a peer that does not pong within half of it is dropped."""
        self.reconnects = 0
        """Successful connections after the first one."""
        self.connected = False
        self.connected_event = asyncio.Event()
        self.events_received = 0
        self.replaced = 0
        """Times another websocket took our application over (``ApplicationReplaced``)."""
        self.replaced_at: float | None = None
        """When that last happened (monotonic)."""
        self._replaced = False
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._dropped = False

    # ------------------------------------------------------------------ control

    async def run(self) -> None:
        """Connect, resync, read; on any loss wait ``backoff.compute(n)`` and reconnect."""
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        failures = 0
        connections = 0
        try:
            while not self._stopping:
                up_since: float | None = None
                try:
                    ws = await self.client.connect_events(heartbeat=self.heartbeat)
                    self._ws = ws
                    up_since = loop.time()
                    connections += 1
                    if connections > 1:
                        self.reconnects += 1
                    if self._stopping:
                        break
                    self.connected = True
                    self.connected_event.set()
                    log.info("ARI events: connected (app %s)%s", self.client.app,
                             f", reconnect #{self.reconnects}" if connections > 1 else "")
                    await self._resync()
                    reason = await self._read(ws)
                except AriError as e:
                    reason = str(e)
                except (aiohttp.ClientError, OSError, TimeoutError) as e:
                    reason = f"{type(e).__name__}"
                finally:
                    await self._disconnect()
                if self._stopping:
                    break
                stable = _REPLACED_STABLE_AFTER if self._replaced else _STABLE_AFTER
                self._replaced = False
                if up_since is not None and loop.time() - up_since >= stable:
                    failures = 0
                delay = self.backoff.compute(failures)
                failures += 1
                log.warning("ARI events: %s; reconnecting in %.2f s", reason, delay)
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            self._task = None

    async def stop(self) -> None:
        """Stop ``run()`` (it returns) and close the websocket. Final for this instance."""
        self._stopping = True
        self._wake.set()
        await self._close_ws()
        task = self._task
        if task is None or task is asyncio.current_task() or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=1.0)
        if not done:  # stuck connecting: cancel it
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)

    def replaced_recently(self, hold: float = REPLACED_HOLD_S) -> bool:
        """Did another websocket take our application over within the last ``hold`` s?"""
        return self.replaced_at is not None and time.monotonic() - self.replaced_at < hold

    async def drop(self) -> None:
        """Close the current websocket as if the connection were cut (tests)."""
        self._dropped = True
        await self._close_ws()

    # ------------------------------------------------------------------ internals

    async def _resync(self) -> None:
        if self.on_connect is None:
            return
        try:
            await self.on_connect()
        except AriError as e:
            log.warning("ARI events: resync after connect failed: %s", e)
        except Exception:
            log.exception("ARI events: on_connect failed")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        """Deliver messages until the socket closes; returns why it closed."""
        on_event = self.on_event
        loads = jsonx.loads
        text = aiohttp.WSMsgType.TEXT
        while True:
            msg = await ws.receive()
            if msg.type is text:
                try:
                    raw = loads(msg.data)
                except ValueError:
                    log.debug("ARI events: non-JSON message ignored")
                    continue
                self.events_received += 1
                ev = parse_event(raw)
                if ev.type == "ApplicationReplaced":
                    # Deaf from now on: take the app back (reconnect), loudly.
                    self.replaced += 1
                    self.replaced_at = time.monotonic()
                    self._replaced = True
                    log.error("ARI events: another websocket took our Stasis application %s "
                              "over (%d time(s)): events go there, not here; reconnecting to "
                              "take it back (we hold this node)", self.client.app,
                              self.replaced)
                    return "application taken over by another websocket"
                try:
                    on_event(ev)
                except Exception:
                    log.exception("ARI events: on_event failed for %s", ev.type)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                continue
            else:
                break
        if self._dropped:
            self._dropped = False
            return "connection dropped locally"
        if self._stopping:
            return "stopping"
        exc = ws.exception()
        if exc is not None:
            if isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError)):
                return "no heartbeat answer: peer presumed dead"
            return f"connection lost ({type(exc).__name__})"
        return f"closed by Asterisk (code {ws.close_code})"

    async def _disconnect(self) -> None:
        was = self.connected
        self.connected = False
        self.connected_event.clear()
        await self._close_ws()
        self._ws = None
        if was:
            log.debug("ARI events: disconnected")

    async def _close_ws(self) -> None:
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
