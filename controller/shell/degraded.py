"""Degraded mode (Redis away): routing goes on from memory; what happened meanwhile is
written back when Redis answers again."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from controller.adapters.redis import RedisStore, StoreUnavailable
from controller.adapters.redis.leases import CallEnd
from controller.cluster.manager import Cluster
from controller.shell.call import Call

log = logging.getLogger("callctl.runtime")

T = TypeVar("T")
PENDING_MAX = 10_000
"""Entries each write-back queue holds while Redis is away; past it the oldest is dropped
(logged, counted in ``callctl_redis_writeback_dropped_total``)."""
Rejected = tuple[dict[str, Any], list[dict[str, Any]], str | None]
"""A call refused on arrival, waiting for Redis: (record, trace, blocked_by)."""


class Degraded:
    """Redis away: routing from memory, call ends queued, state written back on return."""

    # What this role uses of the controller (controller.shell.runtime.Controller):
    calls: dict[str, Call]
    cluster: Cluster[Call]
    store: RedisStore
    store_degraded: bool
    _pending_ends: deque[tuple[Call, CallEnd]]
    _pending_rejected: deque[Rejected]
    _pending_failover: deque[dict[str, str]]
    _pending_sticky: dict[tuple[str, str], tuple[str, float]]
    writeback_dropped: int
    spawn: Callable[..., asyncio.Task[Any]]

    # ------------------------------------------------------------------ degraded mode

    def local_busy(self) -> set[str]:
        """Users on a call of this controller (busy as far as we know without Redis)."""
        return {u for c in self.calls.values() for u in c.busy_users}

    def pend(self, queue: deque[T], item: T, what: str) -> None:
        """Queue ``item`` for the write-back; a full queue drops its oldest entry, said
        (the first drop of an outage and every 1000th after) and counted."""
        if queue.maxlen is not None and len(queue) >= queue.maxlen:
            self._dropped(what, queue.maxlen)
        queue.append(item)

    def _dropped(self, what: str, limit: int) -> None:
        self.writeback_dropped += 1
        if self.writeback_dropped % 1000 == 1:
            log.error("redis away: the write-back queue of %s is full (%d): the oldest is "
                      "dropped, %d dropped so far", what, limit, self.writeback_dropped)

    def pending_writes(self) -> int:
        """What waits for Redis: call ends, refused calls' records, failover-test events,
        sticky agents."""
        return (len(self._pending_ends) + len(self._pending_rejected)
                + len(self._pending_failover) + len(self._pending_sticky))

    async def write_sticky(self, department: str, caller: str, user: str, ttl: int) -> None:
        """Remember who answered ``caller`` for ``department``; Redis away: held in memory
        (used by the next call of that caller meanwhile) and written back with what is left
        of its ``ttl``."""
        try:
            await self.store.set_sticky(department, caller, user, ttl)
        except StoreUnavailable as e:
            log.warning("sticky agent %s for %s at %s not written (%s): written when Redis "
                        "is back", user, caller, department, e)
            if len(self._pending_sticky) >= PENDING_MAX:
                self._pending_sticky.pop(next(iter(self._pending_sticky)))
                self._dropped("sticky agents", PENDING_MAX)
            self._pending_sticky[(department, caller)] = (user, time.time() + ttl)
            self.store_failed()

    def sticky_held(self, department: str, caller: str) -> str | None:
        """A sticky agent known only to this controller (set while Redis was away)."""
        held = self._pending_sticky.get((department, caller))
        return held[0] if held is not None and held[1] > time.time() else None

    def store_failed(self) -> None:
        """A Redis operation failed: routing goes on from memory (last flows, last user
        facts, local round-robin); when Redis answers again, :meth:`store_resync` runs."""
        if self.store_degraded:
            return
        self.store_degraded = True
        log.warning("redis unavailable: degraded mode (routing from memory) until it is back")
        self.spawn(self._store_watch())

    async def _store_watch(self, every: float = 0.5) -> None:
        while True:
            await asyncio.sleep(every)
            if not await self.store.ping():
                continue
            try:
                await self.store_resync()
            except StoreUnavailable as e:
                log.warning("redis re-sync interrupted (%s); retrying", e)
                continue
            self.store_degraded = False
            log.info("redis is back: state re-synced")
            return

    async def store_resync(self) -> None:
        """Write back what happened while Redis was away: the state of calls that started
        meanwhile (so a peer could adopt them), busy marks, released marks, finished calls'
        state removal and call logs (rejected calls' too), failover-test events and sticky
        agents."""
        for call in list(self.calls.values()):
            # Every write is decided again after each await: a call that ended (or began
            # its teardown) meanwhile must not get its start state or busy marks written
            # back after its end (a ghost call, an agent left busy): its end wins.
            if not self._live(call):
                continue
            if call.id not in self.cluster._leased:
                await self.cluster.start_call(call, {
                    "did": call.ctx.did, "caller": call.ctx.caller,
                    "started": str(call.started), "flow_version": str(call.version)})
                if not self._live(call):
                    # It ended during the write: its end is written after it, or was
                    # before it (then START_CALL found its trace and wrote nothing), or is
                    # pending below; the lease is not ours to renew.
                    self.cluster._leased.discard(call.id)
                    continue
            if call.result == "connected" or call.busy_users:
                await self.cluster.save_connected(call)
        while self._pending_ends:
            call, end = self._pending_ends[0]
            await self.cluster.end_call(call, end)
            self._pending_ends.popleft()
        while self._pending_rejected:
            record, trace, blocked_by = self._pending_rejected[0]
            await self.store.log_rejected(record, trace, blocked_by)
            self._pending_rejected.popleft()
        while self._pending_failover:
            await self.store.failover_log(self._pending_failover[0])
            self._pending_failover.popleft()
        for key, (user, until) in list(self._pending_sticky.items()):
            left = int(until - time.time())
            if left > 0:
                await self.store.set_sticky(key[0], key[1], user, left)
            if self._pending_sticky.get(key) == (user, until):  # not set again meanwhile
                del self._pending_sticky[key]

    async def last_write_back(self, seconds: float = 2.0) -> None:
        """At stop, Redis having been away: one bounded try to write back what waits; what
        cannot be written is said (it is lost with this process)."""
        if not (self.store_degraded or self.pending_writes()):
            return
        try:
            async with asyncio.timeout(seconds):
                if await self.store.ping():
                    await self.store_resync()
        except (StoreUnavailable, TimeoutError):
            pass
        if self.pending_writes():
            log.error("shutdown: Redis away: lost with this stop, not written: %d call "
                      "end(s), %d refused call record(s), %d failover-test event(s), %d "
                      "sticky agent(s)", len(self._pending_ends), len(self._pending_rejected),
                      len(self._pending_failover), len(self._pending_sticky))

    def _live(self, call: Call) -> bool:
        """Still ours and not ending: its state may be written."""
        return not (call.abandoned or call.ending) and self.calls.get(call.id) is call
