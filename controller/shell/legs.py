"""A live call's legs over ARI: ring them, book the one that answers, bridge it with the
caller (the Port requests of controller.core.ringrace's driver; part of ``Call``)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from controller.adapters.ari.client import AriClient
from controller.adapters.ari.errors import AriError, AriUnavailable, NotFound
from controller.adapters.redis import StoreUnavailable
from controller.core.callerid import presentable
from controller.core.model import CallContext, DialTarget, Role, TraceEntry
from controller.core.port import Originate, Unavailable, Winner

if TYPE_CHECKING:
    from controller.shell.ports import CallHost

__all__ = ["TARGET_VAR", "Legs", "Winner", "target_from_json", "target_json"]

log = logging.getLogger("callctl.call")

TARGET_VAR = "CALLCTL_TARGET"
"""Channel variable set on every leg: whom it rings (``target_json``), so a controller that
adopts the call knows who answered it (controller.cluster.manager)."""


def target_json(t: DialTarget) -> str:
    return json.dumps({"kind": t.kind, "address": t.address, "user": t.user, "role": t.role},
                      separators=(",", ":"))


def target_from_json(raw: str | None) -> DialTarget | None:
    """``target_json`` read back (None if missing or malformed)."""
    try:
        d = json.loads(raw or "")
        kind, role, user = d["kind"], d.get("role") or "primary", d.get("user") or None
        if kind not in ("sip", "pstn") or role not in ("primary", "alternate", "failover") \
                or not (user is None or isinstance(user, str)):
            return None
        return DialTarget(kind, str(d["address"]), user=user, role=cast(Role, role))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


class Legs:
    """The ringing half of ``controller.shell.call.Call`` (a mixin: the state is the
    call's)."""

    ctl: CallHost
    ari: AriClient
    id: str
    ctx: CallContext
    version: int
    answered: bool
    legs: set[str]
    connected_leg: str | None
    winner: Winner | None
    busy_users: set[str]
    bridge_id: str | None
    _bridge_task: asyncio.Task[None] | None
    _ring_pending: bool

    if TYPE_CHECKING:
        async def answer(self) -> None: ...

        def _set_connecting(self, on: bool) -> None: ...

        async def _hangup_channel(self, channel_id: str, cause: int | None = None) -> None: ...

    async def originate(self, legs: Sequence[Originate]) -> list[bool]:
        sending = asyncio.gather(*(self._originate(a) for a in legs))
        self._prepare()  # scheduled after the originates: never ahead of an INVITE
        return list(await sending)

    async def cancel(self, legs: Sequence[tuple[str, int | None]], wait: float) -> None:
        jobs = [asyncio.ensure_future(self._hangup_channel(leg, cause)) for leg, cause in legs]
        for job in jobs:
            self.ctl.background(job)
        if jobs and wait > 0:
            await asyncio.wait(jobs, timeout=wait)

    def busy_here(self) -> set[str]:
        return self.ctl.local_busy() - self.busy_users

    async def claim(self, winner: Winner) -> bool:
        """The store step (controller.cluster.manager: ``claim``); the call is connecting
        from here until the claim is lost or the caller connected."""
        self.winner = winner
        self._set_connecting(True)
        try:
            return await self.ctl.cluster.claim(self)
        except StoreUnavailable as e:
            raise Unavailable(str(e)) from None
        except BaseException:
            self._set_connecting(False)
            raise

    def claimed(self, winner: Winner, won: bool) -> None:
        if not won:
            self.winner = None
            self._set_connecting(False)
            return
        self.connected_leg = winner.leg
        if winner.target.user:
            self.busy_users.add(winner.target.user)

    async def connect(self, leg: str) -> None:
        try:
            await self._join(leg)
        finally:
            self._set_connecting(False)

    def connected_with(self, target: DialTarget) -> None:
        self.ctl.notify_live({"event": "answered", "call_id": self.id, "did": self.ctx.did,
                              "caller": self.ctx.caller, "flow_version": self.version,
                              "user": target.user, "address": target.address,
                              "role": target.role, "answered_at": time.time()})

    async def _originate(self, a: Originate) -> bool:
        t = a.target
        endpoint = f"PJSIP/{t.address}" if t.kind == "sip" else \
            f"PJSIP/{t.address}@{self.ctl.trunk}"
        caller_id = presentable(a.caller_id) if a.caller_id else \
            presentable(self.ctx.caller, self.ctx.caller_name)
        self.legs.add(a.leg_id)
        try:
            await self.ari.originate(endpoint, channel_id=a.leg_id, app=self.ctl.app,
                                     app_args=f"leg,{self.id}", caller_id=caller_id,
                                     originator=self.id,
                                     timeout=int(a.timeout) + 10,
                                     variables={TARGET_VAR: target_json(t)})
            return True
        except AriError as e:
            if isinstance(e, AriUnavailable):
                # No answer (a timeout under load): Asterisk may still create the channel.
                # It stays in ``legs`` so teardown hangs it up; it may not ring on meanwhile.
                self.ctl.background(self._hangup_channel(a.leg_id))
            else:
                self.legs.discard(a.leg_id)
            log.info("call %s: cannot ring %s (%s): HTTP %s", self.id, endpoint, t.role,
                     e.status)
            return False

    def _prepare(self) -> None:
        """Off the critical path, once legs ring: the bridge (ready before anyone answers)
        and the ringback the flow asked for."""
        if self._bridge_task is None:
            self.bridge_id = f"{self.id}-B"
            self._bridge_task = asyncio.create_task(self._create_bridge())
        if self._ring_pending:
            self._ring_pending = False
            if not self.answered:
                self.ctl.background(self.ari.ring(self.id))

    async def _create_bridge(self) -> None:
        assert self.bridge_id
        await self.ari.create_bridge(self.bridge_id, type="mixing")

    async def _join(self, leg_id: str, add: Sequence[str] | None = None) -> None:
        """Answer the caller and put caller and leg in the call's bridge at once (one round
        trip, not two); ``add``: only these channels (an adopter finishing a connect)."""
        self._prepare()
        assert self._bridge_task is not None
        await self._bridge_task
        channels = [self.id, leg_id] if add is None else list(add)
        adding = asyncio.ensure_future(
            self.ari.add_to_bridge(self.bridge_id or "", channels)) if channels else None
        try:
            await self.answer()
        except BaseException:
            if adding is not None:
                await asyncio.gather(adding, return_exceptions=True)
            raise
        if adding is None:
            return
        try:
            await adding
        except AriError as e:
            # 404 (bridge) or 400 "Channel not found": a side hung up meanwhile; its end
            # event follows and ends the call as usual.
            if not (isinstance(e, NotFound) or "not found" in e.message.lower()):
                raise
            log.info("call %s: leg %s or caller vanished while bridging", self.id, leg_id)

    def connect_entries(self) -> list[TraceEntry]:
        """The trace entries a connect adds (the answer, the answering leg), for the durable
        state written before they are logged (``Cluster.connected_fields``)."""
        w = self.winner
        if w is None:
            return []
        t = w.target
        return [TraceEntry(w.at, "answer", {"user": t.user, "address": t.address,
                                            "role": t.role}),
                TraceEntry(w.at, "leg", {"user": t.user, "address": t.address,
                                         "tech": t.kind, "role": t.role,
                                         "outcome": "answered", "cause": None,
                                         "via_alternate": w.via_alternate,
                                         "started": w.started, "ended": w.at})]
