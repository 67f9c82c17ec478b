"""Handover: leave calls to another controller (on a stop, or a give-back to the node's primary
controller) without touching their channels."""

from __future__ import annotations

import asyncio
import logging

from controller.adapters.redis import StoreUnavailable
from controller.cluster.adoption import Adoption
from controller.cluster.nodes import Node
from controller.cluster.policy import SETTLE_S, bridged, may_hand_over
from controller.cluster.ports import C

log = logging.getLogger("callctl.cluster")


class Handover(Adoption[C]):
    # ------------------------------------------------------------------ handover

    async def hand_over_all(self) -> int:
        """We stop (CALLCTL_ON_STOP=handover): leave every live call to whoever takes its node
        next, without touching its channels. Call after ``stop_streams``."""
        calls = [c for c in self.ctl.calls.values() if may_hand_over(c)]
        n, flow = await self.hand_over(calls, list(self._restarting))
        log.info("stop: %d calls handed over (%d bridged, %d in their flow): a peer, or this "
                 "controller restarted, adopts them", n, n - flow, flow)
        return n

    async def give_back(self, node: Node, peer: str) -> int:
        """``peer`` is ``node``'s primary controller and alive: stop hearing the node, leave
        its calls to the peer as on a stop, release its lease; the peer takes the node on its
        next tick and adopts the calls."""
        assert self.leases is not None
        node.held = False  # not renewed any more (tick), whatever happens below
        node.down_since = None
        await node.stream.stop()
        calls = [c for c in self.ctl.calls.values() if c.node == node.name and may_hand_over(c)]
        n, flow = await self.hand_over(
            calls, [cid for cid, r in self._restarting.items() if r[2] == node.name])
        try:
            await self.leases.release_node(node.name)
        except StoreUnavailable as e:
            log.warning("node %s: lease not released (%s): it lapses in %.1f s", node.name, e,
                        self.lease_s)
        log.info("node %s: handed back to %s, its primary controller: %d calls handed over "
                 "(%d bridged, %d in their flow)", node.name, peer, n, n - flow, flow)
        return n

    async def hand_over(self, calls: list[C], restarting: list[str]) -> tuple[int, int]:
        """Leave ``calls`` (and adopted calls on their way back into the app, ``restarting``)
        to another controller: stop their tasks without touching their channels (no hangup,
        no bridge destroyed), make sure their state is in Redis (a bridged call's leg and
        bridge: ``save_connected``), release their leases (only ours). The next holder of
        their node adopts them at once (controller.cluster.adoption). Returns (calls handed
        over, how many of them were still in their flow). Redis away: logged; the leases
        lapse and the calls are adopted then."""
        await self._settle(calls)
        calls = [c for c in calls if may_hand_over(c) and self.ctl.calls.get(c.id) is c]
        unrecorded = {c.id for c in calls if c.id not in self._leased}
        for call in calls:
            call.abandoned = True  # its teardown now only forgets it
            self._leased.discard(call.id)
            if call.task is not None and not call.task.done():
                call.task.cancel()
        for cid in restarting:
            self._restarting.pop(cid, None)
            self._leased.discard(cid)
        running = [c.task for c in calls if c.task is not None and not c.task.done()]
        if running:
            await asyncio.wait(running, timeout=2.0)
        for call in calls:  # a task cancelled before it ran never reached its teardown
            if self.ctl.calls.get(call.id) is call:
                del self.ctl.calls[call.id]
        flow = sum(1 for c in calls if not bridged(c))
        if self.leases is None or not (calls or restarting):
            return len(calls), flow
        leases = self.leases
        try:
            # a call whose state was not written yet (Redis away when it came, or its first
            # write still on its way): write it, taking its lease (released below)
            first = [c for c in calls if c.id in unrecorded]
            written = await asyncio.gather(*(leases.start_call(c.id, c.node, self._state(c))
                                             for c in first))
            theirs = {c.id for c, ok in zip(first, written, strict=True) if not ok}
            ours = [c for c in calls if c.id not in theirs]  # theirs: another one drives it
            await asyncio.gather(*(self.save_connected(c) for c in ours if bridged(c)))
            ids = [c.id for c in ours] + restarting
            for i in range(0, len(ids), 500):
                await leases.release_calls(ids[i:i + 500])
        except StoreUnavailable as e:
            log.warning("handover: Redis unavailable (%s): the calls' leases lapse within "
                        "%.1f s, then a peer adopts them (this controller restarted: at once)",
                        e, self.lease_s)
            if unrecorded:
                log.error("handover: %d of these calls started while Redis was away and have "
                          "no state in it: no peer can adopt them where they are",
                          len(unrecorded))
        return len(calls), flow

    @staticmethod
    async def _settle(calls: list[C], timeout: float = SETTLE_S) -> None:
        """Let the calls with an answering leg finish connecting (bounded): handed over half
        way, the leg would have answered for nothing if the call's connected state is not
        written yet; handed over once connected, they go on talking."""
        try:
            async with asyncio.timeout(timeout):
                for call in calls:
                    await call.settled()
        except TimeoutError:
            log.warning("handover: %d calls still connecting after %.1f s: handed over as "
                        "they are", sum(1 for c in calls if c.answering), timeout)

    @staticmethod
    def _state(call: C) -> dict[str, str]:
        """A call's state as recorded when it arrived (``Controller._new_call``)."""
        return {"did": call.ctx.did, "caller": call.ctx.caller, "started": str(call.started),
                "flow_version": str(call.version)}
