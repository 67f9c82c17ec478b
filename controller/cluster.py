"""Several Asterisk nodes and several controllers on one shared Redis.

A controller serves the nodes listed in ``CALLCTL_ARI_URLS`` (or the one at
``CALLCTL_ARI_URL``). For each node it competes for the node's **lease** in Redis
(``lease:node:<node>``, see ``controller.store.leases``); only the holder opens the node's ARI
event websocket, so exactly one controller hears a node's calls (Asterisk gives a Stasis app
one websocket anyway).

Each call is **owned** by one controller: ``lease:call:<id>`` is set with the call's state
when it arrives, renewed with the node leases every third of the lease time, and released when
the call ends. A controller that dies stops renewing; when its node lease lapses a peer (or
the same controller, restarted) takes the node, connects to its ARI and **adopts** the calls
whose lease has lapsed, from the state in ``call:<id>``:

- a call already connected to someone is supervised again: when either side hangs up, the
  other is hung up, the bridge destroyed, busy marks released and the call logged, as usual.
  Its connected state is written when a leg answers, *before* the caller is answered
  (``Call._claim``), so its controller may have died half-way through connecting it: the
  adopter finishes the connect (answers the caller, creates the bridge if missing, adds the
  channels it lacks);
- a call still in its flow with a leg that answered (up, waiting in the Stasis app: its
  controller died before recording the answer) is connected with that leg, claimed as its
  controller would have (the leg's target is in its ``CALLCTL_TARGET`` variable); the other
  legs are hung up with cause 26;
- a call still in its flow (a menu, ringing) restarts its flow: its ringing legs are hung up
  and the caller's channel is sent through the dialplan into the Stasis app again;
- a call whose caller hung up meanwhile is cleaned up and logged.

Restart and takeover are the same mechanism: a restarted controller is just a peer that finds
its node free (at once with a stable ``CALLCTL_CONTROLLER_ID``: its previous life's leases
count as its own). Nodes listed in ``CALLCTL_NODES_PRIMARY`` are taken as soon as they are
free; a standby node only when no live controller (``controller:<id>`` presence) has it as
primary.

A controller that stops cleanly (SIGTERM/SIGINT) **hands its calls over** (``hand_over``;
``CALLCTL_ON_STOP=hangup`` tears them down instead): it stops hearing events, stops each
call's task without touching its channels (no hangup, no bridge destroyed) - first letting
calls with an answering leg finish connecting (``SETTLE_S`` at most) - makes sure the
call's state is in Redis (a bridged call's leg and bridge), releases the call's lease, then
leaves (presence) and releases its node leases. Whoever takes the node next (a peer on its
next tick, or this controller restarted) adopts the calls at once, as above, without waiting
for leases to lapse. A call already tearing down is finished and logged before the stop.

**Give-back**: a controller holding a standby node (a stand-in) hands the node back when a
live peer lists it as primary (that peer's current life seen alive for a lease time), once
none of the node's calls is in its flow or after ``GIVE_BACK_WAIT_S`` regardless: it stops
the node's event stream, hands the node's calls over as on a stop and releases the node
lease; the primary takes the node on its next tick and adopts the calls (bridged ones go on
talking; ones still in their flow run it again). Between the two, the node has no websocket
for the app (a third of a lease time plus a connect): a call arriving then takes the outage
path, as while no controller runs.

A controller that finds its node lease taken (it was cut off
from Redis for longer than a lease) lets go of the node and its calls without touching them.
A node whose ARI stays unreachable for ``CALLCTL_NODE_LOST_MS`` has its calls ended
(result ``node_lost``): busy marks are released, so the agents ring again through other nodes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections.abc import Collection, Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from controller import jsonx
from controller.ami import Ami
from controller.ari.client import AriClient
from controller.ari.errors import AriError, AriUnavailable
from controller.ari.events import ChannelDestroyed, StasisEnd
from controller.ari.stream import EventStream
from controller.callerid import valid_did
from controller.config import AriNode, Settings
from controller.logs import call_context
from controller.model import CallContext, DialTarget, TraceEntry
from controller.ringrace import ANSWERED_ELSEWHERE
from controller.store import StoreUnavailable
from controller.store.leases import CLAIMED_ELSEWHERE, ENDED, GONE, CallEnd, Leases

if TYPE_CHECKING:
    from controller.call import Call
    from controller.runtime import Controller

log = logging.getLogger("callctl.cluster")

DID_CONTEXT = "callctl-did"
"""Dialplan context that validates a DID and enters the Stasis app (re-entry on adoption)."""


def node_specs(settings: Settings) -> tuple[AriNode, ...]:
    """The nodes a controller serves: CALLCTL_ARI_URLS, or the one at CALLCTL_ARI_URL."""
    if settings.ari_nodes:
        return settings.ari_nodes
    return (AriNode(settings.node_name, settings.ari_url, settings.ari_user,
                    settings.ari_password, settings.ami_port, settings.ami_secret,
                    ami_host=settings.ami_host),)


def bridged(call: Any) -> bool:
    """The call is connected to someone (its answering leg claimed: its ``call:<id>`` says
    so, ``Cluster.claim``; perhaps not bridged yet): an adopter supervises it, finishing the
    connect if need be. Else it is still in its flow."""
    return call.result == "connected" or call.connected_leg is not None


SETTLE_S = 2.0
"""How long a handover waits for calls with an answering leg to finish connecting."""


def answered_legs(cid: str, app: str, channels: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The legs of call ``cid`` that answered and wait in our Stasis app, oldest first."""
    found: list[tuple[int, str]] = []
    for ch_id, ch in channels.items():
        head, sep, seq = ch_id.rpartition("-L")
        if head != cid or not sep or not seq.isdigit() or ch.get("state") != "Up":
            continue
        dp = ch.get("dialplan") or {}
        if dp.get("app_name") == "Stasis" and \
                str(dp.get("app_data") or "").startswith(f"{app},leg,{cid}"):
            found.append((int(seq), ch_id))
    return [c for _, c in sorted(found)]


def missing_from_bridge(channels: Collection[str], bridge: Mapping[str, Any] | None) -> list[str]:
    """Which of ``channels`` are not in ``bridge`` (all of them if it does not exist)."""
    inside = set((bridge or {}).get("channels") or ())
    return [c for c in channels if c not in inside]


def may_hand_over(call: Any) -> bool:
    """A live call we drive that another controller may take: not one we already let go of
    (``abandoned``), nor one tearing down (``ending``: it finishes here, then is logged)."""
    return not call.abandoned and not call.ending


def give_back(held: Iterable[str], primary: Collection[str],
              peers: Mapping[str, Mapping[str, Any]], seen: Mapping[str, float], me: str,
              now: float, settle_s: float) -> dict[str, str]:
    """The nodes we hold as a stand-in that go back to their primary controller:
    ``{node: peer id}``. A node goes back when it is not one of our ``primary`` nodes and a
    live peer (``peers``: presence by controller id) lists it as primary, once that peer's
    current life (its presence token) has been seen alive for ``settle_s`` (``seen``: token
    -> first seen, same clock as ``now``), so a peer that dies as it starts gets nothing."""
    out: dict[str, str] = {}
    for node in sorted(held):
        if node in primary:
            continue
        for cid in sorted(peers):
            p = peers[cid]
            if cid == me or node not in (p.get("primary") or ()):
                continue
            since = seen.get(str(p.get("token")))
            if since is not None and now - since >= settle_s:
                out[node] = cid
                break
    return out


GIVE_BACK_WAIT_S = 60.0
"""How long a give-back waits for the node's calls still in their flow (a menu, ringing) to
be bridged or to end: handed over, those would run their flow again at the primary."""


def give_back_now(mid_flow: int, waiting_since: float | None, now: float,
                  max_wait: float = GIVE_BACK_WAIT_S) -> bool:
    """Whether a node due to go back goes now: when none of its calls is in its flow (bridged
    calls are handed over seamlessly), or once it has waited ``max_wait`` for them."""
    return mid_flow == 0 or (waiting_since is not None and now - waiting_since >= max_wait)


class Node:
    """One Asterisk node as a controller sees it: ARI client, event stream, AMI, lease."""

    def __init__(self, ctl: Controller, spec: AriNode) -> None:
        self.ctl = ctl
        self.name = spec.name
        self.spec = spec
        self.ari = AriClient(spec.url, spec.user, spec.password, ctl.app)
        self.stream = self._new_stream()
        self.ami = Ami(spec.ami_host or spec.host, spec.ami_port, ctl.settings.ami_user,
                       spec.ami_secret)
        self.ami_ok = False
        self.held = False
        self.task: asyncio.Task[None] | None = None
        self.free_since: float | None = None
        self.down_since: float | None = None

    def _new_stream(self) -> EventStream:
        return EventStream(self.ari, partial(self.ctl.on_node_event, self.name),
                           on_connect=partial(self.ctl.resync, self.name))

    def __repr__(self) -> str:
        return f"Node({self.name!r}, held={self.held})"


class Cluster:
    def __init__(self, ctl: Controller) -> None:
        s = ctl.settings
        self.ctl = ctl
        # Stable across restarts by default, so a restarted controller takes its node and
        # calls back at once; several controllers on one host need their own ids.
        self.id = s.controller_id or f"{socket.gethostname()}-{s.app}"
        self.instance = secrets.token_hex(4)
        self.nodes: dict[str, Node] = {spec.name: Node(ctl, spec) for spec in node_specs(s)}
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

    # ------------------------------------------------------------------ lifecycle

    async def check(self) -> dict[str, str]:
        """ARI of every node: {node: version or error}. Raises if none answers."""
        from controller.runtime import StartupError

        out: dict[str, str] = {}
        for node in self.nodes.values():
            try:
                info = await node.ari.asterisk_info()
                out[node.name] = (info or {}).get("system", {}).get("version", "?")
                name = (info or {}).get("config", {}).get("name", "")
                if name != node.name:
                    log.warning("node %s: its Asterisk systemname is %r, not %r: channel ids "
                                "may collide between nodes (set CALLCTL_NODE=%s there)",
                                node.name, name, node.name, node.name)
            except AriError as e:
                out[node.name] = f"unavailable ({e})"
        if not any(not v.startswith("unavailable") for v in out.values()):
            raise StartupError("no Asterisk node answers on ARI: " + "; ".join(
                f"{k} {self.nodes[k].spec.url}: {v}" for k, v in out.items()))
        for k, v in out.items():
            log.info("node %s: asterisk %s at %s", k, v, self.nodes[k].spec.url)
        return out

    async def start(self) -> None:
        s = self.ctl.settings
        self.leases = Leases(self.ctl.store.redis, s.redis_prefix, self.id, self.instance,
                             s.lease_ms, runner=self.ctl.store.runner)
        self._started = time.monotonic()
        await self._heartbeat()
        await self._acquire()
        self.ctl._spawn(self._loop())

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

    async def stop_streams(self) -> None:
        """Stop hearing events (shutdown): the websockets close; leases are still renewed
        until ``close()``, so no peer adopts calls that are still being torn down."""
        self._stopping = True
        await asyncio.gather(*(n.stream.stop() for n in self.nodes.values()))

    async def release(self) -> None:
        """We stop: remove our presence, then release our node leases, so a peer (or this
        controller restarted) takes the nodes on its next tick and adopts the calls left on
        them. Presence first: a peer's standby node is taken only when no live controller
        has it as primary. Redis away: the leases lapse instead."""
        if self.leases is None:
            return
        try:
            await self.leases.leave()
        except StoreUnavailable:
            pass
        for node in self.held():
            node.held = False
            try:
                await self.leases.release_node(node.name)
            except StoreUnavailable as e:
                log.warning("node %s: lease not released (%s): it lapses in %.1f s",
                            node.name, e, self.lease_s)

    async def close(self) -> None:
        """Release our node leases (a peer may take the nodes at once) and close clients."""
        await self.release()
        for node in self.nodes.values():
            await node.ami.close()
            await node.ari.close()

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
            if node is self.first:
                self.ctl.stream = node.stream
        node.task = asyncio.ensure_future(node.stream.run())
        self.ctl._tasks.add(node.task)
        node.task.add_done_callback(self.ctl._done)
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

    async def hand_over(self, calls: list[Call], restarting: list[str]) -> tuple[int, int]:
        """Leave ``calls`` (and adopted calls on their way back into the app, ``restarting``)
        to another controller: stop their tasks without touching their channels (no hangup,
        no bridge destroyed), make sure their state is in Redis (a bridged call's leg and
        bridge: ``save_connected``), release their leases (only ours). The next holder of
        their node adopts them at once (controller.cluster: adoption). Returns (calls handed
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
        return len(calls), flow

    @staticmethod
    async def _settle(calls: list[Call], timeout: float = SETTLE_S) -> None:
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
    def _state(call: Call) -> dict[str, str]:
        """A call's state as recorded when it arrived (``Controller._new_call``)."""
        return {"did": call.ctx.did, "caller": call.ctx.caller, "started": str(call.started),
                "flow_version": str(call.version)}

    def abandon(self, call: Call) -> None:
        """Forget a call without touching it: another controller drives it now."""
        call.abandoned = True
        call.feed(StasisEnd.synthetic(call.id))

    def _end_lost_calls(self, node: Node) -> None:
        for call in list(self.ctl.calls.values()):
            if call.node == node.name and not call.abandoned and call.result != "node_lost":
                log.warning("call %s: node %s unreachable for %.0f s: ending the call",
                            call.id, node.name, self.node_lost_s, extra={"call_id": call.id})
                call.result = "node_lost"
                call.feed(StasisEnd.synthetic(call.id))

    # ------------------------------------------------------------------ calls

    def bind(self, call: Call, node: str | None) -> None:
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

    async def start_call(self, call: Call, fields: dict[str, str]) -> None:
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

    async def end_call(self, call: Call, end: CallEnd) -> None:
        """The call ended: its state, lease, busy marks, log and counters (one Lua step)."""
        assert self.leases is not None
        self._leased.discard(call.id)
        await self.leases.finish_call(call.id, call.node, end)

    async def claim(self, call: Call) -> bool:
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

    async def save_connected(self, call: Call) -> None:
        """Write a connected call's state again (a handover, Redis back)."""
        if self.leases is None:
            return
        await self.leases.connected(call.id, sorted(call.busy_users),
                                    self.connected_fields(call))

    @staticmethod
    def connected_fields(call: Call, users: Collection[str] = ()) -> dict[str, str]:
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

    def _supervise(self, node: Node, call: Call, channels: dict[str, dict[str, Any]],
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
        task = asyncio.ensure_future(call.resume(add))
        call.task = task
        self.ctl._call_tasks.add(task)
        task.add_done_callback(self.ctl._call_tasks.discard)
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
        from controller.call import TARGET_VAR, Winner, target_from_json

        try:
            target = target_from_json(await node.ari.get_var(leg, TARGET_VAR))
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
        call.winner = Winner(leg, target, now, now, target.role == "alternate")
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
            call._bridge_task = done  # type: ignore[assignment]
        self._supervise(node, call, channels, bridges, legs)
        return True

    def _restore(self, node: Node, cid: str, state: dict[str, str]) -> Call:
        from controller.call import Call

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
        call = Call(self.ctl, cid, ctx, version)
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
                call._bridge_task = done  # type: ignore[assignment]
            call.busy_users = {u for u in (state.get("busy") or "").split(",") if u}
        return call

    async def _hangup(self, node: Node, channel_id: str, cause: int | None = None) -> None:
        try:
            await node.ari.hangup(channel_id, reason_code=cause)
        except (AriError, AriUnavailable):
            pass
