"""The published flow set this controller routes on, kept current within a second.

A publish announces its version on a Redis pub/sub channel; a 1 s poll of the live version
backs that up (pub/sub messages are lost across reconnects). The last loaded version stays in
memory, so calls keep being routed when Redis is down. A call keeps the version it started with
(it holds a reference to that FlowSet), so a publish never changes a call in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.exceptions import RedisError

from controller.flows import publish

log = logging.getLogger("callctl.flows")


class LiveFlows:
    def __init__(self, store: Any, prefix: str, poll: float = 1.0) -> None:
        self.store = store
        self.prefix = prefix
        self.poll = poll
        self.current: tuple[int, Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()

    async def start(self) -> None:
        await self.refresh()
        if self.current is None:
            log.warning("no published flows yet: calls will be rejected until "
                        "`callctl publish DIR`")
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def refresh(self) -> bool:
        """Load the live version if it changed. True if it changed."""
        try:
            live = await publish.load_live(self.store.redis, prefix=self.prefix,
                                           if_not=self.current[0] if self.current else None)
        except (RedisError, OSError) as e:
            log.warning("flows: cannot read the live version (%s); keeping version %s",
                        e.__class__.__name__, self.current[0] if self.current else "none")
            return False
        if live is None:
            return False
        if self.current is None or live[0] != self.current[0]:
            self.current = live
            log.info("flows: now routing on version %d", live[0])
            self.changed.set()
            self.changed = asyncio.Event()
            return True
        return False

    async def _watch(self) -> None:
        channel = f"{self.prefix}flows:published"
        while True:
            pubsub = self.store.redis.pubsub()
            try:
                await pubsub.subscribe(channel)
                while True:
                    await pubsub.get_message(ignore_subscribe_messages=True, timeout=self.poll)
                    await self.refresh()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                await asyncio.sleep(self.poll)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
