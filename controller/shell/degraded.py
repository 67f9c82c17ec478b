"""Degraded mode (Redis away): routing goes on from memory; what happened meanwhile is
written back when Redis answers again."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from controller.adapters.redis import RedisStore, StoreUnavailable
from controller.adapters.redis.leases import CallEnd
from controller.cluster.manager import Cluster
from controller.shell.call import Call

log = logging.getLogger("callctl.runtime")


class Degraded:
    """Redis away: routing from memory, call ends queued, state written back on return."""

    # What this role uses of the controller (controller.shell.runtime.Controller):
    calls: dict[str, Call]
    cluster: Cluster[Call]
    store: RedisStore
    store_degraded: bool
    _pending_ends: deque[tuple[Call, CallEnd]]
    _pending_rejected: deque[tuple[dict[str, Any], list[dict[str, Any]], str | None]]
    spawn: Callable[..., asyncio.Task[Any]]

    # ------------------------------------------------------------------ degraded mode

    def local_busy(self) -> set[str]:
        """Users on a call of this controller (busy as far as we know without Redis)."""
        return {u for c in self.calls.values() for u in c.busy_users}

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
        state removal and call logs (rejected calls' too)."""
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

    def _live(self, call: Call) -> bool:
        """Still ours and not ending: its state may be written."""
        return not (call.abandoned or call.ending) and self.calls.get(call.id) is call
