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
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from controller.adapters.redis import flowstore as publish
from controller.adapters.redis.keys import Keys
from controller.adapters.redis.watch import watch

log = logging.getLogger("callctl.flows")


class LiveFlows:
    def __init__(self, store: Any, prefix: str, poll: float = 1.0) -> None:
        self.store = store
        self.prefix = prefix
        self.poll = poll
        self.current: tuple[int, Any] | None = None
        self.failover_tests: frozenset[str] = frozenset()
        self.on_change: list[Callable[[int, Any], None]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.refresh()
        await self.refresh_tests()
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
            for cb in self.on_change:
                cb(*live)
            return True
        return False

    async def refresh_tests(self) -> None:
        """Which lines are under a failover test (cached: no Redis trip per call)."""
        try:
            tests = frozenset(await self.store.failover_tests())
        except Exception as e:
            log.warning("failover tests: cannot read (%s)", e)
            return
        if tests != self.failover_tests:
            log.info("failover tests active on: %s", ", ".join(sorted(tests)) or "none")
            self.failover_tests = tests

    async def _watch(self) -> None:
        async def tick() -> None:
            await self.refresh()
            await self.refresh_tests()

        keys = Keys(self.prefix)
        await watch(self.store.redis, (keys.flows_published, keys.failover_changed),
                    self.poll, tick)
