"""Ordered per-key dispatch: one queue and one consumer task per key (e.g. per call).

Events of one key are handled strictly in submission order; keys run concurrently, so a slow
handler for one call never delays another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, Generic, TypeVar

__all__ = ["KeyedDispatcher"]

log = logging.getLogger("callctl.dispatch")

E = TypeVar("E")


class _Close:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<close>"


_CLOSE: Final = _Close()


class KeyedDispatcher(Generic[E]):
    """``submit(key, event)`` -> ``await handler(key, event)`` in order per key.

    ``close_key(key)``: the consumer handles what is queued, then exits and the key is
    forgotten (a later ``submit`` for the key starts afresh, still after the queued events).
    A handler exception is logged with the key; the consumer goes on with the next event.
    """

    __slots__ = ("_closed", "_handler", "_queues", "_tasks")

    def __init__(self, handler: Callable[[str, E], Awaitable[None]]) -> None:
        self._handler = handler
        self._queues: dict[str, asyncio.Queue[Any]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    def __len__(self) -> int:
        """Live keys (each has a queue and a consumer task)."""
        return len(self._queues)

    def __contains__(self, key: object) -> bool:
        return key in self._queues

    def pending(self, key: str) -> int:
        """Events queued for ``key`` and not yet taken by its consumer (0 if unknown)."""
        q = self._queues.get(key)
        return 0 if q is None else q.qsize()

    def submit(self, key: str, event: E) -> None:
        """Queue ``event`` for ``key`` (never blocks; starts the key's consumer on first use)."""
        q = self._queues.get(key)
        if q is None:
            if self._closed:
                raise RuntimeError("KeyedDispatcher is closed")
            q = asyncio.Queue()
            self._queues[key] = q
            self._tasks[key] = asyncio.get_running_loop().create_task(
                self._consume(key, q), name=f"dispatch:{key}")
        q.put_nowait(event)

    def close_key(self, key: str) -> None:
        """Let ``key``'s consumer finish its queue, then exit and forget the key."""
        q = self._queues.get(key)
        if q is not None:
            q.put_nowait(_CLOSE)

    async def aclose(self) -> None:
        """Cancel every consumer (queued events are dropped) and wait for them."""
        self._closed = True
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._queues.clear()
        self._tasks.clear()

    async def _consume(self, key: str, q: asyncio.Queue[Any]) -> None:
        handler = self._handler
        try:
            while True:
                ev = await q.get()
                if ev is _CLOSE:
                    if q.empty():
                        return
                    continue  # submitted after close_key: the key lives on
                try:
                    await handler(key, ev)
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is None or task.cancelling():
                        raise  # we are being cancelled (aclose)
                    log.error("dispatch: handler for key %s was cancelled", key)
                except Exception:
                    log.exception("dispatch: handler failed for key %s", key)
        finally:
            # No await between the empty() check and here: no submit can slip in between.
            if self._queues.get(key) is q:
                del self._queues[key]
                del self._tasks[key]
