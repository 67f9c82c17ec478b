"""Calls rejected on arrival (blocked caller, no flow for the DID, a phone's refused or
unroutable number): hung up unanswered, logged like any call."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from controller.adapters.ari.errors import AriError
from controller.adapters.redis import RedisStore, StoreUnavailable
from controller.cluster.manager import Cluster
from controller.core.calllog import build_record
from controller.shell.blocklist import BLOCK_CAUSE
from controller.shell.degraded import Rejected
from controller.shell.live import LiveFlows

log = logging.getLogger("callctl.runtime")


class Rejections:
    """A call refused on arrival: hung up through the node its event came from, logged."""

    # What this role uses of the controller (controller.shell.runtime.Controller):
    cluster: Cluster[Any]
    flows: LiveFlows
    store: RedisStore
    _event_node: str | None
    """The node of the event being handled (None: the first node)."""
    _notify: Callable[[dict[str, Any]], None]
    _pending_rejected: deque[Rejected]
    """Records of calls rejected while Redis was away."""
    store_failed: Callable[[], None]
    pend: Callable[..., None]

    def _rejected_at(self) -> dict[str, Any]:
        """When, where and under which flow version a call was rejected on arrival."""
        live = self.flows.current
        return {"started": time.time(), "node": self.cluster.node(self._event_node).name,
                "version": live[0] if live else None}

    def _hangup_stray(self, channel_id: str, cause: int | None = None) -> Awaitable[None]:
        ari = self.cluster.node(self._event_node).ari  # the node the event came from

        async def hangup() -> None:
            try:
                await ari.hangup(channel_id, reason_code=cause)
            except AriError:
                pass

        return hangup()

    async def _log_rejected(self, call_id: str, did: str, caller: str, *, started: float,
                            node: str, version: int | None,
                            blocked_by: str | None = None, result: str | None = None,
                            cause: int = 1, origin: dict[str, Any] | None = None) -> None:
        """The call log record of a call rejected before its flow: the same fields as any
        other record (controller.core.calllog.build_record), with one trace entry saying why
        (``result``: a phone's call, ``no_route`` or ``external_refused``, with its
        ``cause`` and ``origin`` fields)."""
        trace = [{"at": started, "kind": "blocked", "pattern": blocked_by,
                  "cause": BLOCK_CAUSE} if blocked_by else
                 {"at": started, "kind": result or "no_flow", "did": did, "cause": cause}]
        record = build_record(
            call_id=call_id, did=did, caller=caller, flow_version=version, started=started,
            ended=time.time(), result=result or ("blocked" if blocked_by else "no_flow"),
            trace=trace, node=node, blocked_by=blocked_by, **(origin or {}))
        self._notify({**record, "trace": trace})
        try:
            await self.store.log_rejected(record, trace, blocked_by)
        except StoreUnavailable as e:
            # Redis away: the record waits (bounded) and is written when Redis is back
            # (controller.shell.degraded), once: the write is idempotent.
            log.warning("call %s: rejected call's record not written (%s): written when "
                        "Redis is back", call_id, e)
            self.pend(self._pending_rejected, (record, trace, blocked_by), "refused calls")
            self.store_failed()
