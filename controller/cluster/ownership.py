"""Call ownership: the cluster's state, and each call's lease and state in Redis (start,
claim when a leg answers, end)."""

from __future__ import annotations

import logging
import secrets
import socket
import time
from collections.abc import Collection
from typing import Any, Generic

from controller import jsonx
from controller.adapters.ari.events import StasisEnd
from controller.adapters.redis.leases import CLAIMED_ELSEWHERE, ENDED, CallEnd, Leases
from controller.cluster.nodes import Node
from controller.cluster.policy import node_specs
from controller.cluster.ports import C, CallKit, Host

log = logging.getLogger("callctl.cluster")


class Ownership(Generic[C]):
    """The cluster's state and each call's lease. ``ctl``: the process served; ``kit``: how
    to make its calls (adoption). The roles build on this one, each in its module:
    Ownership < Adoption < Handover < Leasing < Cluster (``controller.cluster.manager``)."""

    def __init__(self, ctl: Host[C], kit: CallKit[C]) -> None:
        s = ctl.settings
        self.ctl = ctl
        self.kit = kit
        # Stable across restarts by default, so a restarted controller takes its node and
        # calls back at once; several controllers on one host need their own ids.
        self.id = s.controller_id or f"{socket.gethostname()}-{s.app}"
        self.instance = secrets.token_hex(4)
        self.nodes: dict[str, Node] = {
            spec.name: Node(spec, s.app, s.ami_user, ctl.on_node_event, ctl.resync)
            for spec in node_specs(s)}
        self.first = next(iter(self.nodes.values()))
        self.primary = set(s.nodes_primary) or set(self.nodes)
        self.lease_s = s.lease_ms / 1000
        self.node_lost_s = s.node_lost_ms / 1000
        self.leases: Leases | None = None
        self._stopping = False
        self._started = time.monotonic()
        self.peers: dict[str, dict[str, Any]] = {}
        """Live controllers (from their presence in Redis): id -> {token, nodes, primary}."""
        self._leased: set[str] = set()
        """Calls whose lease we took (renewed each tick until they end)."""
        self._restarting: dict[str, tuple[str, int, str]] = {}
        """Adopted calls sent back into the app to run their flow again: id -> (previous
        owner, highest leg number used, node), until their new StasisStart."""
        self._seen: dict[str, float] = {}
        """Live peers' presence tokens -> when first seen (monotonic): see give_back()."""
        self._give_back_since: dict[str, float] = {}
        """Nodes due to go back to their primary -> since when (monotonic), while they wait
        for their calls still in a flow (give_back_now)."""
        self._beats = 0
        self.duplicate = False
        """Another live controller has our id: its leases are not our previous life's."""

    @property
    def token(self) -> str:
        return f"{self.id}/{self.instance}"

    def node(self, name: str | None) -> Node:
        return self.nodes[name] if name else self.first

    def held(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.held]

    def abandon(self, call: C) -> None:
        """Forget a call without touching it: another controller drives it now."""
        call.abandoned = True
        call.feed(StasisEnd.synthetic(call.id))
    # ------------------------------------------------------------------ calls

    def bind(self, call: C, node: str | None) -> None:
        """A new call arrived on ``node``: drive it through that node's ARI."""
        n = self.node(node)
        call.node = n.name
        call.ari = n.ari
        restarted = self._restarting.pop(call.id, None)
        if restarted is not None:  # an adopted call running its flow again
            previous, seq, _ = restarted
            call.leg_seq = seq  # new legs never reuse the id of one still being hung up
            call.play_seq = 1000  # nor playbacks
            call.ctx.log("adopted", node=n.name, controller=self.id, previous=previous,
                         restarted=True)

    async def start_call(self, call: C, fields: dict[str, str]) -> None:
        """Claim the new call and record its state (one Lua step)."""
        assert self.leases is not None
        if call.abandoned:  # handed over (or let go of) before its state was written
            return
        ok = await self.leases.start_call(call.id, call.node, fields)
        if ok == ENDED:  # its end reached Redis first (another connection): nothing written
            return
        if ok and call.abandoned:  # handed over while this was on its way: not ours now
            await self.leases.release_call(call.id)
        elif ok:
            self._leased.add(call.id)
        else:
            log.error("call %s: another controller holds its lease: letting go", call.id)
            self.abandon(call)

    async def end_call(self, call: C, end: CallEnd) -> None:
        """The call ended: its state, lease, busy marks, log and counters (one Lua step)."""
        assert self.leases is not None
        self._leased.discard(call.id)
        await self.leases.finish_call(call.id, call.node, end)

    async def claim(self, call: C) -> bool:
        """``call.winner`` answered: book its user for the call and record the call as
        connected, in one Lua step (CONNECTED), before the caller is answered. False: the
        user is on another call (nothing written). Raises StoreUnavailable."""
        if self.leases is None:
            return True
        assert call.winner is not None
        user = call.winner.target.user
        users = [user] if user else []
        res = await self.leases.claim_connected(call.id, users,
                                                self.connected_fields(call, users))
        return res != CLAIMED_ELSEWHERE

    async def save_connected(self, call: C) -> None:
        """Write a connected call's state again (a handover, Redis back)."""
        if self.leases is None:
            return
        await self.leases.connected(call.id, sorted(call.busy_users),
                                    self.connected_fields(call))

    @staticmethod
    def connected_fields(call: C, users: Collection[str] = ()) -> dict[str, str]:
        """What a peer needs to finish connecting ``call`` and supervise it (``call:<id>``).
        Written before the answer is logged: the trace then gets the entries the connect
        adds (``Call.connect_entries``)."""
        w = call.winner
        entries = list(call.ctx.trace)
        if not any(t.kind == "answer" for t in entries):
            entries += call.connect_entries()
        trace = [{"at": t.at, "kind": t.kind, **t.data} for t in entries]
        answered_by = call.ctx.answered_by or (
            (w.target.user or w.target.address) if w is not None else "")
        return {
            "state": "connected", "leg": call.connected_leg or (w.leg if w else ""),
            "bridge": call.bridge_id or f"{call.id}-B", "answered_by": answered_by,
            "answered_at": str(call.answered_at or (w.at if w else time.time())),
            "busy": ",".join(sorted(set(call.busy_users) | set(users))),
            "path": jsonx.dumps(call.ctx.path), "trace": jsonx.dumps(trace, default=str),
        }
