"""After a (re)connect to a node: calls whose channels vanished are ended, lost media end
events delivered, orphans adopted, lost StasisStarts routed, empty call bridges destroyed."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

from controller.adapters.ari.client import AriClient
from controller.adapters.ari.errors import AriError, NotFound
from controller.adapters.ari.events import (
    ChannelDestroyed,
    Event,
    PlaybackFinished,
    RecordingFinished,
    StasisEnd,
    StasisStart,
)
from controller.adapters.ari.parse import parse_channel
from controller.adapters.redis import RedisStore
from controller.cluster.manager import Cluster
from controller.cluster.nodes import Node
from controller.shell.call import Call
from controller.shell.router import call_key

log = logging.getLogger("callctl.runtime")


_CALL_BRIDGE = re.compile(r"[\w.-]*\.\d+-B")
"""A call's bridge: ``<Asterisk unique id>-B`` (controller.shell.call)."""


class Resync:
    """A node's (re)connect: what changed while we did not hear it."""

    # What this role uses of the controller (controller.shell.runtime.Controller):
    app: str
    event_types: tuple[str, ...]
    calls: dict[str, Call]
    cluster: Cluster[Call]
    store: RedisStore
    services: Any
    """controller.shell.services.Services (its ``metrics``)."""
    on_node_event: Callable[[str, Event], None]

    async def resync(self, node: str | None = None) -> None:
        """After a (re)connect to a node: its calls whose channels vanished meanwhile are
        ended; calls left there by a controller that is gone are adopted."""
        n = self.cluster.node(node)
        try:
            await n.ari.set_event_filter(self.event_types)
        except AriError as e:  # an older Asterisk: all events come, and are ignored
            log.info("ARI event filter not set (%s): receiving every event", e)
        try:
            channels = await n.ari.list_channels()
        except AriError as e:
            log.warning("resync: cannot list channels: %s", e)
            return
        alive = {c["id"] for c in channels or []}
        for call in list(self.calls.values()):
            if call.node != n.name or call.abandoned:
                continue
            if call.id not in alive:
                log.info("call %s: gone while disconnected", call.id,
                         extra={"call_id": call.id})
                call.feed(StasisEnd.synthetic(call.id))
                continue
            for leg in list(call.legs):
                if leg not in alive:
                    call.feed(ChannelDestroyed.synthetic(leg, 0))
        await self._lost_media_ends(n, alive)
        await self.cluster.adopt_orphans(n, {c["id"]: c for c in channels or []})
        await self._missed_starts(n.name, channels or [])
        await self._sweep_bridges(n.ari)

    async def _lost_media_ends(self, node: Node, alive: set[str]) -> None:
        """A call waiting for a PlaybackFinished / RecordingFinished Asterisk sent while we
        were disconnected (or to the connection that took our app over) would wait until its
        bound: ask ARI about each such playback or recording and deliver its end now if it
        is gone. A duplicate (the real event came too) is ignored by the call."""
        waiting = [(c, c.waiting_on) for c in self.calls.values()
                   if c.node == node.name and not c.abandoned and c.waiting_on is not None
                   and c.id in alive]
        if not waiting:
            return

        async def check(call: Call, kind: str, ident: str) -> None:
            try:
                if kind == "playback":
                    await node.ari.get_playback(ident)
                else:
                    await node.ari.get_live_recording(ident)
                return  # still going: its end event will come on this connection
            except NotFound:
                pass
            except AriError as e:  # the bound still holds
                log.info("resync: cannot check %s %s: %s", kind, ident, e)
                return
            if call.waiting_on != (kind, ident) or self.calls.get(call.id) is not call:
                return  # the call went on meanwhile
            self.media_event_lost(call, kind, ident, "resync")
            call.feed(PlaybackFinished(ident, state="gone") if kind == "playback"
                      else RecordingFinished(ident, state="gone"))

        await asyncio.gather(*(check(c, *w) for c, w in waiting))

    def media_event_lost(self, call: Call, kind: str, ident: str, found_by: str) -> None:
        """The end event of a call's playback or recording never came (found at the wait's
        bound, or by the resync): logged on the call and counted."""
        log.warning("call %s: %s %s ended without its %s event (lost; found by the %s): "
                    "going on", call.id, kind, ident,
                    "PlaybackFinished" if kind == "playback" else "RecordingFinished",
                    found_by, extra={"call_id": call.id})
        call.ctx.log("media_event_lost", media=kind, id=ident, found_by=found_by)
        self.services.metrics.media_events_lost.inc(media=kind, found_by=found_by)

    async def _missed_starts(self, node: str, channels: list[dict[str, Any]]) -> None:
        """StasisStarts Asterisk sent while our websocket was going down (to the closing
        socket): a caller already in our app that we never heard of would wait forever, and
        a leg that answered would ring on unnoticed. Deliver them now, from the channels'
        state. A caller with call state in Redis is an adopted call, not a missed one."""
        prefix = f"{self.app},"
        for ch in channels:
            dp = ch.get("dialplan") or {}
            data = str(dp.get("app_data") or "")
            if dp.get("app_name") != "Stasis" or not data.startswith(prefix):
                continue
            args = data[len(prefix):].split(",")
            cid = ch.get("id", "")
            if args[0] in ("inbound", "internal") and cid not in self.calls and \
                    call_key(cid) == cid:
                try:
                    if await self.store.redis.exists(self.store.keys.call(cid)):
                        continue  # adopted (or being adopted) by controller.cluster.adoption
                except Exception:
                    pass  # Redis away: nobody could have adopted it
                if cid in self.calls:  # its StasisStart arrived meanwhile
                    continue
                log.warning("call %s: its StasisStart was lost with the websocket: routing it "
                            "now", cid, extra={"call_id": cid})
            elif args[0] == "leg" and len(args) > 1 and ch.get("state") == "Up":
                call = self.calls.get(args[1])
                if call is None or cid in call.leg_starts or call.connected_leg is not None:
                    continue
                log.warning("call %s: leg %s answered while the websocket was down", args[1],
                            cid, extra={"call_id": args[1]})
            else:
                continue
            self.on_node_event(node, StasisStart(parse_channel(ch), tuple(args)))

    async def _sweep_bridges(self, ari: AriClient) -> None:
        """Destroy our call bridges (``<call>-B``) left empty by a call that is gone (a
        teardown that could not reach Asterisk, a controller killed mid-call). We hold the
        node, so every live call on it is in ``self.calls`` (adopted ones included)."""
        try:
            bridges = await ari.list_bridges() or []
        except AriError as e:
            log.info("resync: cannot list bridges: %s", e)
            return
        for b in bridges:
            bid = b.get("id", "")
            if _CALL_BRIDGE.fullmatch(bid) and not b.get("channels") and \
                    bid[:-2] not in self.calls:
                log.info("bridge %s: left empty by a call that is gone: destroyed", bid)
                try:
                    await ari.destroy_bridge(bid)
                except AriError:
                    pass
