"""The controller: ARI events in, one Call task per inbound call, shared state in Redis."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import aiohttp

from controller import jsonx
from controller.adapters.ari.errors import AriError, AriUnavailable
from controller.adapters.ari.events import StasisEnd
from controller.adapters.ari.stream import EventStream
from controller.adapters.redis import RedisStore, StoreUnavailable
from controller.adapters.redis.leases import CallEnd
from controller.cluster.manager import Cluster
from controller.cluster.ports import CallKit
from controller.config import Settings, StartupError
from controller.core.calllog import build_record, call_counts, counted_users, counter_updates
from controller.core.model import HttpResponse, UserFacts
from controller.shell import memory
from controller.shell.blocklist import BlocklistCache
from controller.shell.call import Call
from controller.shell.degraded import PENDING_MAX, Degraded, Rejected
from controller.shell.legs import TARGET_VAR, Winner, target_from_json
from controller.shell.live import LiveFlows
from controller.shell.outage import OutageSync
from controller.shell.resync import Resync
from controller.shell.router import Router
from controller.shell.services import Services

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


class Controller(Router, Resync, Degraded, OutageSync):
    """One controller process. Its roles, each in its module: :class:`Router` (events to
    calls, arrivals; :class:`Rejections`), :class:`Resync` (after a reconnect),
    :class:`Degraded` (Redis away), :class:`OutageSync` (AstDB failover targets)."""

    event_types: tuple[str, ...] = EVENT_TYPES
    """The ARI event types Asterisk sends us (see EVENT_TYPES)."""

    def __init__(self, settings: Settings, *,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.app = settings.app
        self.trunk = "pstn"
        self._event_node: str | None = None
        self.cluster: Cluster[Call] = Cluster(self, CallKit(
            new=partial(Call, self), winner=Winner, target_var=TARGET_VAR,
            target_from_json=target_from_json))
        """The nodes served, their leases, call ownership and adoption
        (controller.cluster.manager)."""
        self.ari = self.cluster.first.ari  # the first (usually the only) node
        self.store = RedisStore(settings.redis_url, settings.redis_prefix)
        self.flows = LiveFlows(self.store, settings.redis_prefix)
        self.blocklist = BlocklistCache(self.store.redis, settings.redis_prefix)
        self.ami = self.cluster.first.ami
        self.ami_ok = False
        self.flows.on_change.append(lambda version, fs: self.background(self.sync_outage()))
        self.calls: dict[str, Call] = {}
        self.last_facts: dict[str, UserFacts] = {}
        self._cursors: dict[str, int] = {}
        # Degraded mode (Redis away): what to write back when it returns (bounded).
        self.store_degraded = False
        self._pending_ends: deque[tuple[Call, CallEnd]] = deque(maxlen=PENDING_MAX)
        self._pending_rejected: deque[Rejected] = deque(maxlen=PENDING_MAX)
        self._pending_failover: deque[dict[str, str]] = deque(maxlen=PENDING_MAX)
        self._pending_sticky: dict[tuple[str, str], tuple[str, float]] = {}
        self.writeback_dropped = 0
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
        """Metrics, webhooks and the admin API (controller.shell.services)."""

    @property
    def stream(self) -> EventStream:
        """The first node's event stream (a new one each time the node is taken again)."""
        return self.cluster.first.stream

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
        self.spawn(self._outage_keeper())
        trim = memory.malloc_trim() if self.settings.malloc_trim_s else None
        if trim is not None:
            self.spawn(memory.keep_trimmed(self.settings.malloc_trim_s, trim))

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
        await self.last_write_back()  # Redis away: what waits for it, or say it is lost
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

    # ------------------------------------------------------------------ services for calls

    async def call_ended(self, call: Call) -> None:
        self.calls.pop(call.id, None)
        ended = time.time()
        trace = [{"at": t.at, "kind": t.kind, **t.data} for t in call.ctx.trace]
        tested = [t["line"] for t in trace if t["kind"] == "failover_test"]
        record = build_record(  # who rang, durations, failovers, voicemail: controller.core.calllog
            call_id=call.id, did=call.ctx.did, caller=call.ctx.caller,
            flow_version=call.version, started=call.started, ended=ended,
            answered_at=call.answered_at, result=call.result,
            answered_by=call.ctx.answered_by, path=call.ctx.path, node=call.node, trace=trace,
            **call.ctx.record)  # a phone's call: origin, from_user, from_endpoint, route
        end = self._call_end(call, record, trace)
        try:
            # state, indexes, lease, busy marks, call log and counters: one atomic step
            await self.cluster.end_call(call, end)
        except StoreUnavailable as e:
            log.warning("call %s: end not written (%s): busy marks, call log and counters "
                        "are written when Redis is back", call.id, e)
            self.pend(self._pending_ends, (call, end), "call ends")
            self.store_failed()
        for line in tested:
            event = {"event": "call", "line": line, "call_id": call.id, "result": call.result}
            if not self.store_degraded:  # degraded: in order, after what waits already
                try:
                    await self.store.failover_log(event)
                    continue
                except StoreUnavailable:
                    self.store_failed()
            self.pend(self._pending_failover, event, "failover-test events")
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
        self.spawn(aw, quiet=True)

    def spawn(self, aw: Awaitable[Any], quiet: bool = False) -> asyncio.Task[Any]:
        """A task of the process: cancelled at ``close``; failures logged."""
        task = asyncio.ensure_future(aw)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def drive(self, call: Call, aw: Awaitable[None]) -> None:
        """Run ``aw`` (``run``, or ``resume`` for an adopted call) as ``call``'s task."""
        task = asyncio.ensure_future(aw)
        call.task = task
        self._call_tasks.add(task)
        task.add_done_callback(self._call_tasks.discard)

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
