"""The controller: ARI events in, one Call task per inbound call, shared state in Redis."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from controller import jsonx, memory
from controller.ami import AmiError, failover_value
from controller.ari.client import AriClient
from controller.ari.errors import AriError, AriUnavailable, NotFound
from controller.ari.events import (
    ChannelDestroyed,
    Event,
    PlaybackFinished,
    RecordingFinished,
    StasisEnd,
    StasisStart,
    channel_id_of,
    parse_channel,
)
from controller.blocklist import BLOCK_CAUSE, BlocklistCache
from controller.call import Call
from controller.callerid import normalise, valid_did
from controller.calllog import build_record, call_counts, counted_users, counter_updates
from controller.cluster import Cluster, Node
from controller.config import Settings
from controller.flows.schema import outage_extras, outage_targets
from controller.live import LiveFlows
from controller.logs import call_context
from controller.model import CallContext, HttpResponse, UserFacts
from controller.services import Services
from controller.store import RedisStore, StoreUnavailable
from controller.store.leases import CallEnd

log = logging.getLogger("callctl.runtime")


EVENT_TYPES = ("StasisStart", "StasisEnd", "ChannelHangupRequest", "ChannelDestroyed",
               "ChannelDtmfReceived", "PlaybackFinished", "RecordingFinished",
               "RecordingFailed", "ApplicationReplaced")
"""The ARI events the controller handles. Asterisk is told to send only these (an app event
filter, set on every connect): a call otherwise brings ~40 events (variable sets, state
changes, dial and bridge events) that cost more CPU to read than the call itself; bridge
entries (two a call) are left out too, since a call knows when it bridged from its own
``addChannel``. A handler for another event type must add it here (or to
``Controller.event_types``)."""


_CALL_BRIDGE = re.compile(r"[\w.-]*\.\d+-B")
"""A call's bridge: ``<Asterisk unique id>-B`` (controller.call)."""


class StartupError(RuntimeError):
    """A dependency is missing at start. The message is one line saying which and what to do."""


def call_key(channel_id: str) -> str:
    """The call a channel/playback id belongs to: legs are ``<call>-L<n>``, playbacks ``-P<n>``."""
    head, sep, tail = channel_id.rpartition("-")
    if (sep and tail[:1] in ("L", "P", "B") and tail[1:].isdigit()) or tail == "B":
        return head
    return channel_id


class Controller:
    event_types: tuple[str, ...] = EVENT_TYPES
    """The ARI event types Asterisk sends us (see EVENT_TYPES)."""

    def __init__(self, settings: Settings, *,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.app = settings.app
        self.trunk = "pstn"
        self._event_node: str | None = None
        self.cluster = Cluster(self)
        """The nodes served, their leases, call ownership and adoption (controller.cluster)."""
        self.ari = self.cluster.first.ari  # the first (usually the only) node
        self.store = RedisStore(settings.redis_url, settings.redis_prefix)
        self.flows = LiveFlows(self.store, settings.redis_prefix)
        self.blocklist = BlocklistCache(self.store.redis, settings.redis_prefix)
        self.stream = self.cluster.first.stream
        self.ami = self.cluster.first.ami
        self.ami_ok = False
        self.flows.on_change.append(lambda version, fs: self.background(self.sync_outage()))
        self.calls: dict[str, Call] = {}
        self.last_facts: dict[str, UserFacts] = {}
        self._cursors: dict[str, int] = {}
        # Degraded mode (Redis away): what to write back when it returns (bounded).
        self.store_degraded = False
        self._pending_ends: deque[tuple[Call, CallEnd]] = deque(maxlen=10_000)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._call_tasks: set[asyncio.Task[Any]] = set()
        self._http: aiohttp.ClientSession | None = None
        self.clock = clock or (lambda: datetime.now(UTC))
        self.calls_total = 0
        self.observers: list[Callable[[dict[str, Any]], None]] = []
        """Called with each finished call's record (tests, webhooks, metrics)."""
        self.live_observers: list[Callable[[dict[str, Any]], None]] = []
        """Called with events of calls in progress: ``{"event": "answered", ...}``."""
        self.services = Services(self)
        """Metrics, webhooks and the admin API (controller.services)."""

    # ------------------------------------------------------------------ lifecycle

    async def check(self) -> None:
        """Fail fast, with one clear line, when ARI or Redis is not there."""
        probe = await self.store.probe()
        if probe == "auth":
            raise StartupError(
                f"Redis at {self.store._safe_url()} refuses our password (REDIS_PASSWORD in "
                "the run directory's secrets.env, CALLCTL_REDIS_PASSWORD, or the one in "
                "REDIS_URL): is another Redis on that port?")
        if probe != "ok":
            raise StartupError(
                f"Redis at {self.store._safe_url()} does not answer: start it with "
                "`callctl stack up` or set REDIS_URL")
        if self.settings.ari_nodes:  # several nodes: at least one must answer
            await self.cluster.check()
            return
        try:
            info = await self.ari.asterisk_info()
        except AriUnavailable:
            raise StartupError(
                f"Asterisk ARI at {self.settings.ari_url} does not answer: start it with "
                "`callctl stack up` or set CALLCTL_ARI_URL") from None
        except AriError as e:
            hint = " (wrong ARI credentials?)" if e.status == 401 else ""
            raise StartupError(
                f"Asterisk ARI at {self.settings.ari_url} answered HTTP {e.status}{hint}: "
                "check CALLCTL_ARI_USER/CALLCTL_ARI_PASSWORD") from None
        except Exception:
            raise StartupError(
                f"Asterisk ARI at {self.settings.ari_url} does not answer: start it with "
                "`callctl stack up` or set CALLCTL_ARI_URL") from None
        log.info("asterisk %s at %s; redis at %s",
                 (info or {}).get("system", {}).get("version", "?"), self.settings.ari_url,
                 self.store._safe_url())
        loop = type(asyncio.get_running_loop()).__module__.partition(".")[0]
        log.info("runtime: %s event loop, %s JSON", loop, jsonx.BACKEND)

    async def start(self, *, admin: bool | None = None) -> None:
        await self.check()
        await self.flows.start()
        await self.blocklist.start()
        await self.services.start(admin=admin)
        await self.cluster.start()  # takes the free nodes' leases, opens their websockets
        self._spawn(self._outage_keeper())
        trim = memory.malloc_trim() if self.settings.malloc_trim_s else None
        if trim is not None:
            self._spawn(memory.keep_trimmed(self.settings.malloc_trim_s, trim))

    # ------------------------------------------------------------------ outage failover

    async def sync_outage(self) -> None:
        """Write each DID's outage failover target into AstDB (read by the dialplan when
        this controller is down); remove stale ones. Never fatal."""
        live = self.flows.current
        if live is None:
            return
        extras = outage_extras(live[1])
        wanted = {did: failover_value(num, box, *extras.get(did, ("", "")))
                  for did, (num, box) in outage_targets(live[1]).items()}
        for node in self.cluster.held():  # each node's own AstDB
            try:
                if not node.ami_ok:
                    await node.ami.connect()
                    node.ami_ok = True
                written, removed = await node.ami.sync_failover(wanted)
            except (AmiError, OSError, TimeoutError) as e:
                node.ami_ok = False
                await node.ami.close()
                log.warning("node %s: outage failover targets not written to AstDB (AMI: %s); "
                            "retrying", node.name, e)
                continue
            finally:
                self.ami_ok = self.cluster.first.ami_ok
            if written or removed:
                log.info("node %s: outage failover targets: %d written, %d removed "
                         "(version %d)", node.name, written, removed, live[0])

    async def _outage_keeper(self) -> None:
        """Re-sync periodically: AstDB may be wiped by an Asterisk reinstall or restart."""
        while True:
            await asyncio.sleep(30)
            await self.sync_outage()

    async def run(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop: stop hearing events; hand the live calls over (CALLCTL_ON_STOP=handover,
        the default: left up and untouched, their state in Redis, their leases and our node
        leases released, so a peer or this controller restarted adopts them at once) or tear
        them down (``hangup``); then every service. Each step is bounded, so a dependency
        that stopped answering (Redis, AMI, ARI) can delay shutdown but never hang it."""
        await self._bounded(self.cluster.stop_streams(), "event streams")
        hangup = self.settings.on_stop == "hangup"
        if hangup:
            for call in self.calls.values():
                if not call.abandoned:  # its teardown hangs up the caller and the legs;
                    call.stopping = True  # logged completed if bridged, else controller_stopped
                    call.feed(StasisEnd.synthetic(call.id))
        else:
            try:
                await self._bounded(self.cluster.hand_over_all(), "call handover")
            except Exception:  # never stop half-way: the leases lapse, the calls are adopted
                log.exception("shutdown: call handover failed")
        if self._call_tasks:  # calls tear down (hang up their channels) on their own; with
            await asyncio.wait(list(self._call_tasks), timeout=5)  # a handover: ending ones
        if not hangup:  # the calls are free: so are their nodes
            await self._bounded(self.cluster.release(), "node leases")
        await self._bounded(self.services.stop(), "admin API and webhooks")
        await self._bounded(self.flows.stop(), "flow watcher")
        await self._bounded(self.blocklist.stop(), "blocklist watcher")
        await self._bounded(self.ami.close(), "AMI")
        for t in list(self._tasks):
            t.cancel()
        await self._bounded(asyncio.gather(*self._tasks, return_exceptions=True),
                            "background tasks")
        if self._http is not None:
            await self._bounded(self._http.close(), "HTTP client")
        # releases our node leases, closes ARI/AMI clients
        await self._bounded(self.cluster.close(), "cluster")
        await self._bounded(self.store.close(), "Redis")

    @staticmethod
    async def _bounded(aw: Awaitable[Any], what: str, seconds: float = 5.0) -> None:
        try:
            async with asyncio.timeout(seconds):
                await aw
        except TimeoutError:
            log.warning("shutdown: %s did not stop within %.0f s; going on", what, seconds)

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
            if args and args[0] == "inbound":
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
        call = Call(self, ch.id, ctx, live[0])
        self.cluster.bind(call, self._event_node)  # driven through its own node's ARI
        call.answered = ch.state == "Up"
        self.calls[ch.id] = call
        self.calls_total += 1
        log.info("call %s: started: DID %s from %s, flow version %d, node %s", ch.id, did,
                 caller or "withheld", live[0], call.node)
        task = asyncio.ensure_future(call.run())  # first: its first step runs before the write
        call.task = task
        self._call_tasks.add(task)
        task.add_done_callback(self._call_tasks.discard)
        self.background(self.cluster.start_call(call, {  # claims the call: lease + state
            "did": did, "caller": caller, "started": str(call.started),
            "flow_version": str(live[0])}))

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
                            blocked_by: str | None = None) -> None:
        """The call log record of a call rejected before its flow: the same fields as any
        other record (controller.calllog.build_record), with one trace entry saying why."""
        trace = [{"at": started, "kind": "blocked", "pattern": blocked_by,
                  "cause": BLOCK_CAUSE} if blocked_by else
                 {"at": started, "kind": "no_flow", "did": did, "cause": 1}]
        record = build_record(
            call_id=call_id, did=did, caller=caller, flow_version=version, started=started,
            ended=time.time(), result="blocked" if blocked_by else "no_flow", trace=trace,
            node=node, blocked_by=blocked_by)
        self._notify({**record, "trace": trace})
        if blocked_by:
            await self.store.count_blocked(blocked_by)
        await self.store.log_call(record, trace)

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
            if args[0] == "inbound" and cid not in self.calls and call_key(cid) == cid:
                try:
                    if await self.store.redis.exists(f"{self.settings.redis_prefix}call:{cid}"):
                        continue  # adopted (or being adopted) by controller.cluster
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

    # ------------------------------------------------------------------ services for calls

    async def call_ended(self, call: Call) -> None:
        self.calls.pop(call.id, None)
        ended = time.time()
        trace = [{"at": t.at, "kind": t.kind, **t.data} for t in call.ctx.trace]
        tested = [t["line"] for t in trace if t["kind"] == "failover_test"]
        record = build_record(  # who rang, durations, failovers, voicemail: controller.calllog
            call_id=call.id, did=call.ctx.did, caller=call.ctx.caller,
            flow_version=call.version, started=call.started, ended=ended,
            answered_at=call.answered_at, result=call.result,
            answered_by=call.ctx.answered_by, path=call.ctx.path, node=call.node, trace=trace)
        end = self._call_end(call, record, trace)
        try:
            # state, indexes, lease, busy marks, call log and counters: one atomic step
            await self.cluster.end_call(call, end)
            for line in tested:
                await self.store.failover_log({"event": "call", "line": line,
                                               "call_id": call.id, "result": call.result})
        except StoreUnavailable as e:
            log.warning("call %s: end not written (%s): busy marks, call log and counters "
                        "are written when Redis is back", call.id, e)
            self._pending_ends.append((call, end))
            self.store_failed()
        log.info("call %s: ended %s (did %s, answered by %s, %.1f s)", call.id, call.result,
                 call.ctx.did, call.ctx.answered_by or "-", ended - call.started)
        self._notify({**record, "trace": trace})

    @staticmethod
    def _call_end(call: Call, record: dict[str, Any], trace: list[dict[str, Any]]) -> CallEnd:
        rows = counter_updates(call_counts(trace))
        known = getattr(call.ctx.flowset, "users", {}) or {}
        return CallEnd(
            ended=record["ended"], record_json=jsonx.dumps(record),
            trace_json=jsonx.dumps(trace), busy=tuple(sorted(call.busy_users)),
            published={u: known[u].receive_calls for u in counted_users(rows) if u in known},
            counts=rows)

    def notify_live(self, event: dict[str, Any]) -> None:
        if event.get("event") == "answered":  # sent by the call's task once it is bridged
            call = self.calls.get(str(event.get("call_id")))
            waited = (event.get("answered_at") or time.time()) - call.started if call else 0.0
            log.info("call %s: answered by %s (%s %s) after %.1f s", event.get("call_id"),
                     event.get("user") or event.get("address"), event.get("role"),
                     event.get("address"), waited)
        for obs in self.live_observers:
            try:
                obs(event)
            except Exception:
                log.exception("live call observer failed")

    def _notify(self, record: dict[str, Any]) -> None:
        for obs in self.observers:
            try:
                obs(record)
            except Exception:
                log.exception("call observer failed")

    # ------------------------------------------------------------------ degraded mode

    def local_busy(self) -> set[str]:
        """Users on a call of this controller (busy as far as we know without Redis)."""
        return {u for c in self.calls.values() for u in c.busy_users}

    def store_failed(self) -> None:
        """A Redis operation failed: routing goes on from memory (last flows, last user
        facts, local round-robin); when Redis answers again, :meth:`store_resync` runs."""
        if self.store_degraded:
            return
        self.store_degraded = True
        log.warning("redis unavailable: degraded mode (routing from memory) until it is back")
        self._spawn(self._store_watch())

    async def _store_watch(self, every: float = 0.5) -> None:
        while True:
            await asyncio.sleep(every)
            if not await self.store.ping():
                continue
            try:
                await self.store_resync()
            except StoreUnavailable as e:
                log.warning("redis re-sync interrupted (%s); retrying", e)
                continue
            self.store_degraded = False
            log.info("redis is back: state re-synced")
            return

    async def store_resync(self) -> None:
        """Write back what happened while Redis was away: the state of calls that started
        meanwhile (so a peer could adopt them), busy marks, released marks, finished calls'
        state removal and call logs."""
        for call in list(self.calls.values()):
            # Every write is decided again after each await: a call that ended (or began
            # its teardown) meanwhile must not get its start state or busy marks written
            # back after its end (a ghost call, an agent left busy): its end wins.
            if not self._live(call):
                continue
            if call.id not in self.cluster._leased:
                await self.cluster.start_call(call, {
                    "did": call.ctx.did, "caller": call.ctx.caller,
                    "started": str(call.started), "flow_version": str(call.version)})
                if not self._live(call):
                    # It ended during the write: its end is written after it, or was
                    # before it (then START_CALL found its trace and wrote nothing), or is
                    # pending below; the lease is not ours to renew.
                    self.cluster._leased.discard(call.id)
                    continue
            if call.result == "connected" or call.busy_users:
                await self.cluster.save_connected(call)
        while self._pending_ends:
            call, end = self._pending_ends[0]
            await self.cluster.end_call(call, end)
            self._pending_ends.popleft()

    def _live(self, call: Call) -> bool:
        """Still ours and not ending: its state may be written."""
        return not (call.abandoned or call.ending) and self.calls.get(call.id) is call

    def local_cursor(self, key: str) -> int:
        n = self._cursors.get(key, 0)
        self._cursors[key] = n + 1
        return n

    async def http_post(self, url: str, payload: dict[str, Any], timeout: float) -> HttpResponse:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        try:
            async with self._http.post(url, json=payload,
                                       timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = None
                return HttpResponse(resp.status, body)
        except (aiohttp.ClientError, TimeoutError) as e:
            return HttpResponse(0, None, e.__class__.__name__)

    def background(self, aw: Awaitable[Any]) -> None:
        """Run a side job (never on the call's critical path); failures are logged."""
        self._spawn(aw, quiet=True)

    def _spawn(self, aw: Awaitable[Any], quiet: bool = False) -> None:
        task = asyncio.ensure_future(aw)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, (AriError, StoreUnavailable)):
                log.warning("background: %s", exc)
                if isinstance(exc, StoreUnavailable):
                    self.store_failed()
            else:
                log.error("background task failed", exc_info=exc)
