"""The lease loop: presence, node and call leases renewed, free nodes taken, lost ones let go,
give-backs, orphans adopted, the calls of unreachable nodes ended."""

from __future__ import annotations

import asyncio
import logging
import time

from controller.adapters.ari.events import StasisEnd
from controller.adapters.redis import StoreUnavailable
from controller.cluster.handover import Handover
from controller.cluster.nodes import Node
from controller.cluster.policy import bridged, give_back, give_back_now, may_hand_over
from controller.cluster.ports import C

log = logging.getLogger("callctl.cluster")


class Leasing(Handover[C]):
    async def _heartbeat(self) -> None:
        assert self.leases is not None
        self.peers, before = await self.leases.heartbeat({
            "token": self.token, "nodes": sorted(self.nodes),
            "primary": sorted(self.primary), "held": sorted(n.name for n in self.held())})
        now = time.monotonic()
        tokens = {str(p.get("token")) for cid, p in self.peers.items() if cid != self.id}
        self._seen = {t: self._seen.get(t, now) for t in tokens}
        theirs = (before or {}).get("token")
        if self._beats and theirs and theirs != self.token and not self.duplicate:
            # Someone rewrote our presence since our last beat: a live controller has our id.
            self.duplicate = True
            log.error("another live controller uses CALLCTL_CONTROLLER_ID=%s (token %s): "
                      "give each controller its own id; not taking over its leases", self.id,
                      theirs)
        self._beats += 1

    # ------------------------------------------------------------------ leases

    async def _loop(self) -> None:
        redis_down = False
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await self.tick()
            except StoreUnavailable as e:
                # Keep serving: nobody else can take our leases while Redis is away.
                if not redis_down:
                    log.warning("cluster: leases not renewed (%s); keeping our nodes and calls",
                                e)
                redis_down = True
                continue
            except Exception:
                log.exception("cluster: tick failed")
            if redis_down:
                log.info("cluster: leases renewed again")
                redis_down = False

    async def tick(self) -> None:
        """Renew our leases, let go of what we lost, take free nodes, adopt orphans, end the
        calls of nodes that stayed unreachable."""
        assert self.leases is not None
        if not self._stopping:
            await self._heartbeat()
        held = self.held()
        calls = [c for c in self.ctl.calls.values() if not c.abandoned and c.id in self._leased]
        node_ok, call_ok = await self.leases.renew([n.name for n in held], [c.id for c in calls])
        for node in held:
            if not node_ok.get(node.name, True):
                await self._lose(node)
        for call in calls:
            if not call_ok.get(call.id, True) and not call.abandoned:
                log.warning("call %s: its lease is held by another controller: letting go",
                            call.id, extra={"call_id": call.id})
                self.abandon(call)
        if self._stopping:  # shutting down: only keep what we hold until close()
            return
        now = time.monotonic()
        due = give_back([n.name for n in self.held()], self.primary, self.peers, self._seen,
                        self.id, now, self.lease_s)
        self._give_back_since = {n: self._give_back_since.get(n, now) for n in due}
        for name, peer in due.items():
            mid = sum(1 for c in self.ctl.calls.values()
                      if c.node == name and may_hand_over(c) and not bridged(c))
            if give_back_now(mid, self._give_back_since[name], now):
                self._give_back_since.pop(name, None)
                await self.give_back(self.nodes[name], peer)
        await self._acquire()
        now = time.monotonic()
        for node in self.held():
            if node.stream.connected:
                node.down_since = None
                await self.adopt_orphans(node)
                continue
            node.down_since = node.down_since or now
            if now - node.down_since >= self.node_lost_s:
                self._end_lost_calls(node)

    async def _acquire(self) -> None:
        assert self.leases is not None
        now = time.monotonic()
        for node in self.nodes.values():
            if node.held:
                continue
            owner = await self.leases.node_owner(node.name)
            free = owner is None or (owner != self.token and owner.startswith(f"{self.id}/")
                                     and not self.duplicate)
            if not free:
                node.free_since = None
                continue
            node.free_since = node.free_since or now
            if node.name not in self.primary and not self._may_stand_in(node.name, now):
                continue
            if await self.leases.claim_node(node.name):
                self._take(node, previous=owner)

    def _may_stand_in(self, node: str, now: float) -> bool:
        """A standby node is taken only when no live controller has it as primary (it would
        take it itself), and not in our first two lease times (peers starting with us have
        said they are alive by then)."""
        if now - self._started < 2 * self.lease_s:
            return False
        return not any(node in p.get("primary", ()) for cid, p in self.peers.items()
                       if cid != self.id)

    def _take(self, node: Node, previous: str | None) -> None:
        node.held = True
        node.free_since = None
        node.down_since = None
        if node.task is not None and not node.task.done():
            return
        if node.task is not None:  # an EventStream is single-use once stopped
            node.stream = node._new_stream()
        node.task = self.ctl.spawn(node.stream.run())
        log.info("node %s: taken by %s%s", node.name, self.id,
                 f" (was {previous})" if previous else "")
        self.ctl.background(self.ctl.sync_outage())

    async def _lose(self, node: Node) -> None:
        """Another controller holds the node now: stop listening, let go of its calls."""
        log.warning("node %s: lease lost to another controller: letting go of it", node.name)
        node.held = False
        await node.stream.stop()
        for call in list(self.ctl.calls.values()):
            if call.node == node.name:
                self.abandon(call)

    def _end_lost_calls(self, node: Node) -> None:
        for call in list(self.ctl.calls.values()):
            if call.node == node.name and not call.abandoned and call.result != "node_lost":
                log.warning("call %s: node %s unreachable for %.0f s: ending the call",
                            call.id, node.name, self.node_lost_s, extra={"call_id": call.id})
                call.result = "node_lost"
                call.feed(StasisEnd.synthetic(call.id))
