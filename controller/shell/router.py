"""The event router: each ARI event to its call's inbox; a new caller routed to its flow
(or rejected), its task started, its lease and state claimed."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from controller.adapters.ari.events import Event, StasisStart
from controller.adapters.ari.parse import channel_id_of
from controller.cluster.manager import Cluster
from controller.core import internal
from controller.core.callerid import normalise, valid_did
from controller.core.model import CallContext, valid_endpoint
from controller.logs import call_context
from controller.shell.blocklist import BLOCK_CAUSE, BlocklistCache
from controller.shell.call import Call
from controller.shell.live import LiveFlows
from controller.shell.rejected import Rejections

log = logging.getLogger("callctl.runtime")


def call_key(channel_id: str) -> str:
    """The call a channel/playback id belongs to: legs are ``<call>-L<n>``, playbacks ``-P<n>``."""
    head, sep, tail = channel_id.rpartition("-")
    if (sep and tail[:1] in ("L", "P", "B") and tail[1:].isdigit()) or tail == "B":
        return head
    return channel_id


class Router(Rejections):
    """Routes each event to its call; starts and claims routed calls."""

    # What this role uses of the controller (controller.shell.runtime.Controller):
    calls: dict[str, Call]
    calls_total: int
    cluster: Cluster[Call]
    flows: LiveFlows
    blocklist: BlocklistCache
    clock: Callable[[], datetime]
    background: Callable[[Awaitable[Any]], None]
    drive: Callable[[Call, Awaitable[None]], None]
    _live: Callable[[Call], bool]

    # ------------------------------------------------------------------ events

    def on_node_event(self, node: str, ev: Event) -> None:
        """An event from ``node``'s websocket: handled by ``on_event`` knowing its node."""
        self._event_node = node
        try:
            self.on_event(ev)
        finally:
            self._event_node = None

    def on_event(self, ev: Event) -> None:
        if isinstance(ev, StasisStart):
            args = ev.args
            if args and args[0] in ("inbound", "internal"):
                self._new_call(ev)
                return
            if args and args[0] == "leg" and len(args) > 1:
                call = self.calls.get(args[1])
                if call is not None:
                    call.leg_starts.add(ev.channel.id)
                    call.feed(ev)
                else:  # a leg answering for a call that is gone: do not leave it up
                    self.background(self._hangup_stray(ev.channel.id))
                return
        cid = channel_id_of(ev)
        if cid is None:
            return
        call = self.calls.get(call_key(cid))
        if call is not None:
            call.feed(ev)

    def _new_call(self, ev: StasisStart) -> None:
        """A caller arrived: every line logged and job spawned about it carries its call_id
        (controller.logs), rejected or not."""
        with call_context(ev.channel.id):
            self._arrive(ev)

    def _arrive(self, ev: StasisStart) -> None:
        ch = ev.channel
        if ch.id in self.calls:
            # Already driven: the resync routed a caller whose StasisStart looked lost and
            # the event came after all (or Asterisk sent it twice). A second Call would ring
            # the same legs (409) and fail over while the first one rings.
            log.info("call %s: duplicate StasisStart ignored", ch.id)
            return
        if ev.args[0] == "internal":  # a registered phone (dialplan: from-agents)
            self._new_internal_call(ev)
            return
        did = ev.args[1] if len(ev.args) > 1 else ch.exten
        caller = normalise(ch.caller_number)
        if not valid_did(did or ""):
            log.warning("call %s: rejected: malformed DID", ch.id)
            self.background(self._hangup_stray(ch.id, 1))
            return
        blocked_by = self.blocklist.match(caller)
        if blocked_by is not None:
            # Documented: a blocked caller is rejected unanswered, before any prompt, with
            # cause 21 (call rejected: SIP 403), logged (result "blocked") and counted.
            log.warning("call %s: caller %s blocked by %s: rejected with cause %d", ch.id,
                        caller or "withheld", blocked_by, BLOCK_CAUSE)
            self.background(self._hangup_stray(ch.id, BLOCK_CAUSE))
            self.background(self._log_rejected(ch.id, did, caller, blocked_by=blocked_by,
                                               **self._rejected_at()))
            return
        live = self.flows.current
        ctx = CallContext(call_id=ch.id, did=did, caller=caller,
                          flowset=live[1] if live else None, now=self.clock,
                          failover_tests=self.flows.failover_tests)
        if live is None or live[1].flow_for_did(did) is None:
            # Documented: a DID with no published flow is rejected, unanswered, with cause 1
            # (unallocated number: SIP 404 to the carrier), and logged with the DID.
            log.warning("call %s: no published flow for DID %s (caller %s): rejected with "
                        "cause 1", ch.id, did, caller or "withheld")
            self.background(self._hangup_stray(ch.id, 1))
            self.background(self._log_rejected(ch.id, did, caller, **self._rejected_at()))
            return
        self._start_call(ev, ctx, live[0])

    def _new_internal_call(self, ev: StasisStart) -> None:
        """A registered phone's call: ``internal,<dialled>,<endpoint>`` (both checked by the
        dialplan, and again here). Routed by :func:`controller.core.internal.route`; a refused or
        unroutable number is rejected unanswered (403 / 404) and logged like any call."""
        ch = ev.channel
        dialled = ev.args[1] if len(ev.args) > 1 else ""
        endpoint = ev.args[2] if len(ev.args) > 2 else ""
        dialled = dialled if valid_did(dialled) else ""
        endpoint = endpoint if valid_endpoint(endpoint) else ""
        live = self.flows.current
        fs = live[1] if live else None
        who = internal.caller_of(fs, endpoint)
        where = internal.route(fs, dialled)
        origin: dict[str, Any] = {"origin": "internal", "from_endpoint": endpoint or None,
                                  "from_user": who.user, "route": where.kind}
        if where.rejected or live is None:
            cause = where.cause or internal.NO_ROUTE_CAUSE
            log.warning("call %s: phone %s dialled %s: %s: rejected with cause %d", ch.id,
                        endpoint or "?", dialled or "a malformed number",
                        where.result or "no_route", cause)
            self.background(self._hangup_stray(ch.id, cause))
            self.background(self._log_rejected(
                ch.id, dialled, who.number, **self._rejected_at(),
                result=where.result or "no_route", cause=cause, origin=origin))
            return
        log.info("call %s: phone %s (%s) dialled %s: %s", ch.id, endpoint, who.user or "-",
                 dialled, where.kind)
        ctx = CallContext(call_id=ch.id, did=where.target if where.kind == "did" else dialled,
                          caller=who.number, caller_name=who.name, flowset=live[1],
                          now=self.clock, failover_tests=self.flows.failover_tests,
                          target=None if where.kind == "did" else (where.kind, where.target),
                          record=origin)
        # The caller is on the phone: busy for departments until the call ends.
        self._start_call(ev, ctx, live[0], busy=(who.user,) if who.user else ())

    def _start_call(self, ev: StasisStart, ctx: CallContext, version: int,
                    busy: tuple[str, ...] = ()) -> None:
        """Drive a routed call: its task, its node, its lease and state in Redis."""
        ch = ev.channel
        did, caller = ctx.did, ctx.caller
        call = self.cluster.kit.new(ch.id, ctx, version)
        call.busy_users.update(busy)
        self.cluster.bind(call, self._event_node)  # driven through its own node's ARI
        call.answered = ch.state == "Up"
        self.calls[ch.id] = call
        self.calls_total += 1
        log.info("call %s: started: DID %s from %s, flow version %d, node %s", ch.id, did,
                 caller or "withheld", version, call.node)
        self.drive(call, call.run())  # first: its first step runs before the write
        self.background(self._claim_new(call, {  # claims the call: lease + state
            "did": did, "caller": caller, "started": str(call.started),
            "flow_version": str(version)}, busy))

    async def _claim_new(self, call: Call, fields: dict[str, str],
                         busy: tuple[str, ...]) -> None:
        """The call's lease and state; then ``busy`` (a phone's calling user) marked busy
        for it, only while its state exists (a call that already ended marks nobody) and
        never over another call's mark; released with the call's end, like any."""
        await self.cluster.start_call(call, fields)
        leases = self.cluster.leases
        if busy and leases is not None and call.id in self.cluster._leased and \
                self._live(call):
            await leases.connected(call.id, busy, {"busy": ",".join(busy)})
