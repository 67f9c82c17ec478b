"""Adoption: a controller that takes a node takes over the calls left there by a controller
that is gone (see controller.cluster.manager)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from controller import jsonx
from controller.adapters.ari.errors import AriError, AriUnavailable
from controller.adapters.ari.events import ChannelDestroyed, StasisEnd
from controller.adapters.redis import StoreUnavailable
from controller.adapters.redis.leases import GONE
from controller.cluster.nodes import Node
from controller.cluster.ownership import Ownership
from controller.cluster.policy import answered_legs, missing_from_bridge
from controller.cluster.ports import C
from controller.core.callerid import valid_did
from controller.core.model import CallContext, DialTarget, TraceEntry
from controller.core.ringrace import ANSWERED_ELSEWHERE
from controller.logs import call_context

log = logging.getLogger("callctl.cluster")

DID_CONTEXT = "callctl-did"
"""Dialplan context that validates a DID and enters the Stasis app (re-entry on adoption)."""


class Adoption(Ownership[C]):
    # ------------------------------------------------------------------ adoption

    async def adopt_orphans(self, node: Node,
                            channels: dict[str, dict[str, Any]] | None = None) -> int:
        """Adopt the calls on ``node`` whose controller is gone. Returns how many."""
        if self.leases is None or not node.held:
            return 0
        ids = await self.leases.orphans(node.name, set(self.ctl.calls))
        if not ids:
            return 0
        if channels is None:
            try:
                channels = {c["id"]: c for c in await node.ari.list_channels() or []}
            except AriError as e:
                log.warning("node %s: cannot list channels to adopt calls: %s", node.name, e)
                return 0
        try:
            bridges = {b["id"]: b for b in await node.ari.list_bridges() or []}
        except AriError as e:
            log.warning("node %s: cannot list bridges to adopt calls: %s", node.name, e)
            return 0
        n = 0
        for cid in ids:
            state = await self.leases.adopt(cid)
            if state == GONE:  # its call:<id> hash expired: a dangling index entry
                await self.leases.forget(cid, node.name)
                continue
            if not isinstance(state, dict):
                continue
            n += 1
            self._leased.add(cid)
            with call_context(cid):  # its lines and the jobs spawned for it carry its id
                try:
                    await self._adopt(node, cid, state, channels, bridges)
                except (AriError, StoreUnavailable) as e:
                    log.warning("call %s: adoption incomplete: %s", cid, e)
        return n

    async def _adopt(self, node: Node, cid: str, state: dict[str, str],
                     channels: dict[str, dict[str, Any]],
                     bridges: dict[str, dict[str, Any]]) -> None:
        before = state.get("owner", "?")
        legs = [c for c in channels if c.startswith(f"{cid}-L")]
        if state.get("state") == "connected":
            log.info("call %s: adopted from %s on node %s (bridged to %s)", cid, before,
                     node.name, state.get("answered_by") or "-")
            call = self._restore(node, cid, state)
            call.ctx.log("adopted", node=node.name, controller=self.id, previous=before)
            self._supervise(node, call, channels, bridges, legs)
            return
        if cid in channels:
            for leg in answered_legs(cid, self.ctl.app, channels):
                if await self._connect_answered(node, cid, state, leg, channels, bridges,
                                                legs):
                    return
        for leg in legs:
            await self._hangup(node, leg)
        did = state.get("did", "")
        if cid in channels and valid_did(did):
            # Its place in the flow died with its controller: run the flow again. The caller
            # re-enters the Stasis app through the dialplan as a new arrival (same channel).
            log.info("call %s: adopted from %s on node %s mid-flow: restarting its flow",
                     cid, before, node.name)
            seqs = [int(t) for t in (leg.rpartition("-L")[2] for leg in legs) if t.isdigit()]
            self._restarting[cid] = (before, max(seqs, default=0), node.name)
            try:
                await node.ari.continue_in_dialplan(cid, DID_CONTEXT, did, 1)
                return
            except AriError as e:
                self._restarting.pop(cid, None)
                log.info("call %s: cannot restart its flow (%s): ending it", cid, e)
        # The caller is gone (or cannot be sent on): clean up and log the call.
        log.info("call %s: adopted from %s on node %s: caller gone, cleaning up", cid, before,
                 node.name)
        call = self._restore(node, cid, state)
        call.caller_up = cid in channels
        call.result = "caller_hangup"
        self.ctl.calls[cid] = call
        await call._teardown()

    def _supervise(self, node: Node, call: C, channels: dict[str, dict[str, Any]],
                   bridges: dict[str, dict[str, Any]], legs: list[str]) -> None:
        """Drive an adopted connected call: finish its connect if it was not finished (the
        caller answered, both channels in the call's bridge), then wait for a hangup."""
        cid, leg = call.id, call.connected_leg
        self.ctl.calls[cid] = call
        add: list[str] | None = None
        if cid in channels and leg and leg in channels:
            call.answered = channels[cid].get("state") == "Up"
            bridge = bridges.get(call.bridge_id or "")
            if bridge is None:
                call._bridge_task = None  # created by the connect
            add = missing_from_bridge((cid, leg), bridge)
            if not add and call.answered:
                add = None  # nothing to finish: bridged
            else:
                log.info("call %s: connected but not bridged (caller %s, missing from the "
                         "bridge: %s): finishing the connect", cid,
                         "up" if call.answered else "not answered", add or "-")
        self.ctl.drive(call, call.resume(add))
        for other in legs:  # any other leg left ringing by the dead controller
            if other != leg:
                self.ctl.background(self._hangup(node, other, ANSWERED_ELSEWHERE))
        if cid not in channels:
            call.feed(StasisEnd.synthetic(cid))
        elif leg and leg not in channels:
            call.feed(ChannelDestroyed.synthetic(leg, 16))

    async def _connect_answered(self, node: Node, cid: str, state: dict[str, str], leg: str,
                                channels: dict[str, dict[str, Any]],
                                bridges: dict[str, dict[str, Any]], legs: list[str]) -> bool:
        """A call in its flow whose ``leg`` answered before its controller recorded it:
        claim it as that controller would have, then connect and supervise it. False: the
        leg's user is on another call (the leg is hung up)."""
        try:
            target = self.kit.target_from_json(await node.ari.get_var(leg, self.kit.target_var))
        except AriError:
            return False  # gone meanwhile
        if target is None:  # rung by a controller that did not tag its legs
            name = str(channels[leg].get("name") or "")
            try:
                target = DialTarget("sip", name.partition("/")[2].rpartition("-")[0])
            except ValueError:
                return False
        call = self._restore(node, cid, state)
        now = time.time()
        call.winner = self.kit.winner(leg, target, now, now, target.role == "alternate")
        user = target.user
        self.ctl.calls[cid] = call  # its events from now on (a tick's adoption: they flow)
        try:
            won = await self.claim(call)
        except StoreUnavailable:
            won = not (user and user in self.ctl.local_busy())
        if not won:
            log.info("call %s: leg %s answered, but %s is on another call: hung up", cid,
                     leg, user)
            if self.ctl.calls.get(cid) is call:
                del self.ctl.calls[cid]
            await self._hangup(node, leg)
            return False
        log.info("call %s: adopted from %s on node %s with leg %s answered (%s): "
                 "connecting it", cid, state.get("owner", "?"), node.name, leg,
                 user or target.address)
        call.connected_leg, call.result = leg, "connected"
        call.legs.add(leg)
        if user:
            call.busy_users.add(user)
        call.ctx.answered_by = user or target.address
        call.ctx.log("adopted", node=node.name, controller=self.id,
                     previous=state.get("owner", "?"))
        call.ctx.trace.extend(call.connect_entries())
        call.bridge_id = f"{cid}-B"
        if call.bridge_id in bridges:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            # a done Future for the bridge task (it is only awaited); LiveCall types it Task
            # as shell/call.py does: the lead widens both to Future when h14's work lands
            call._bridge_task = done  # type: ignore[assignment]
        self._supervise(node, call, channels, bridges, legs)
        return True

    def _restore(self, node: Node, cid: str, state: dict[str, str]) -> C:
        live = self.ctl.flows.current
        ctx = CallContext(call_id=cid, did=state.get("did", ""), caller=state.get("caller", ""),
                          flowset=live[1] if live else None, now=self.ctl.clock)
        try:
            for t in jsonx.loads(state.get("trace") or "[]"):
                at, kind = float(t.pop("at")), str(t.pop("kind"))
                ctx.trace.append(TraceEntry(at, kind, t))
            ctx.path = [str(p) for p in jsonx.loads(state.get("path") or "[]")]
        except (ValueError, TypeError, KeyError):
            pass
        ctx.answered_by = state.get("answered_by") or None
        try:
            version = int(state.get("flow_version") or 0)
        except ValueError:
            version = 0
        call = self.kit.new(cid, ctx, version)
        self.bind(call, node.name)
        try:
            call.started = float(state.get("started") or time.time())
        except ValueError:
            pass
        if state.get("state") == "connected":
            call.answered = True
            call.result = "connected"
            try:
                call.answered_at = float(state.get("answered_at") or 0) or None
            except ValueError:
                call.answered_at = None
            leg = state.get("leg") or None
            call.connected_leg = leg
            if leg:
                call.legs.add(leg)
            if state.get("bridge"):
                call.bridge_id = state["bridge"]
                done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                done.set_result(None)
                call._bridge_task = done  # type: ignore[assignment]  # as above
            call.busy_users = {u for u in (state.get("busy") or "").split(",") if u}
        return call

    async def _hangup(self, node: Node, channel_id: str, cause: int | None = None) -> None:
        try:
            await node.ari.hangup(channel_id, reason_code=cause)
        except (AriError, AriUnavailable):
            pass
