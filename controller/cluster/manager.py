"""Several Asterisk nodes and several controllers on one shared Redis.

A controller serves the nodes listed in ``CALLCTL_ARI_URLS`` (or the one at
``CALLCTL_ARI_URL``). For each node it competes for the node's **lease** in Redis
(``lease:node:<node>``, see ``controller.adapters.redis.leases``); only the holder opens the
node's ARI event websocket, so exactly one controller hears a node's calls (Asterisk gives a
Stasis app one websocket anyway).

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
import time

from controller.adapters.ari.errors import AriError
from controller.adapters.redis import StoreUnavailable
from controller.adapters.redis.leases import Leases
from controller.cluster.leasing import Leasing
from controller.cluster.ports import C
from controller.config import StartupError

log = logging.getLogger("callctl.cluster")


class Cluster(Leasing[C]):
    """The nodes a controller serves, their leases, call ownership, handover and adoption
    (the roles: see :class:`controller.cluster.ownership.Ownership`)."""

    # ------------------------------------------------------------------ lifecycle

    async def check(self) -> dict[str, str]:
        """ARI of every node: {node: version or error}. Raises if none answers."""
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
        self.ctl.spawn(self._loop())

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
