"""Prometheus metrics: counters fed by finished call records, gauges read at scrape time.

The text format is :mod:`controller.adapters.prometheus`; here are the controller's families.
Everything here is pure except :class:`LoopLag`, which samples the event loop.

Metrics (all prefixed ``callctl_``):

=====================================  =======  ==============================================
name                                   type     labels / meaning
=====================================  =======  ==============================================
calls_total                            counter  ``outcome``: the call record's ``result``
                                                (completed, voicemail, hangup, caller_hangup,
                                                no_flow, blocked, controller_stopped, error,
                                                ...)
ring_attempts_total                    counter  ``outcome`` of each ringing leg (answered,
                                                busy, unreachable, no_answer, rejected,
                                                cancelled) and ``role`` (primary, alternate,
                                                failover)
failovers_total                        counter  ``target`` (line: the department's / line's
                                                failover number or voicemail; alternate: a
                                                user's alternate number) and ``reason``
                                                (test, no_answer, nobody_available for lines;
                                                the primary leg's outcome for alternates)
live_calls                             gauge    calls this controller is handling now
ari_reconnects_total                   counter  ARI event websocket reconnects
ari_app_replaced_total                 counter  times another websocket took our Stasis app
                                                over (``ApplicationReplaced``): each time the
                                                controller reconnects to take it back
media_events_lost_total                counter  ``media`` (playback, recording) whose end
                                                event never came, ``found_by`` (bound: at the
                                                wait's bound; resync: at a reconnect)
event_loop_lag_seconds                 gauge    last measured scheduling delay
event_loop_lag_max_seconds             gauge    the largest delay of the last minute
webhook_deliveries_total               counter  ``event`` (answered, call) and ``result``
                                                (ok, failed: gave up after the retries,
                                                dropped: queue full)
webhook_attempt_failures_total         counter  ``event``: failed HTTP attempts (each retry)
call_setup_seconds                     histo    ``flow``: call arrival -> its first leg rings
                                                (menus and messages before it included)
call_wait_seconds                      histo    ``flow``, ``department``: arrival -> answer by
                                                an agent or number
call_talk_seconds                      histo    ``flow``, ``department``: answer -> hang-up
flow_calls_total                       counter  ``flow``, ``outcome`` (as ``calls_total``)
department_calls_total                 counter  ``department``, ``outcome`` (answered, missed:
                                                per department visit)
build_info                             gauge    1, ``version``, ``python``, ``asterisk``
ari_up                                 gauge    ``node``: 1 while its ARI event websocket is
                                                connected
redis_up                               gauge    1 while Redis answers
=====================================  =======  ==============================================

``flow`` and ``department`` labels are bounded: only ids from the published flows this
process has loaded (at most :data:`MAX_IDS` each; ``none`` when a call reached no flow or its
answer no department), anything else is ``other``; a labelled family holds at most
:data:`MAX_SERIES` label sets, further ones are folded into ``other``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import platform
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from controller.adapters.prometheus import MAX_SERIES, OTHER, Registry
from controller.core.calllog import call_counts

NONE = "none"
"""The ``flow``/``department`` label of a call that reached no flow (or whose answer no
department)."""
MAX_IDS = 50
"""Flow ids (and department ids) that get their own label value; more are ``other``."""
SETUP_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
WAIT_BUCKETS = (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 300.0)
TALK_BUCKETS = (5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)


class BoundedIds:
    """The label values one id label may take: ids from the published flows, at most
    ``cap`` of them (the first ones seen, in sorted order per version), plus ``none``;
    anything else is ``other``. Ids stay once seen, so a series never changes its name."""

    def __init__(self, cap: int = MAX_IDS) -> None:
        self.cap = cap
        self.allowed: set[str] = set()

    def add(self, ids: Iterable[str]) -> None:
        for i in sorted(ids):
            if len(self.allowed) >= self.cap:
                return
            self.allowed.add(i)

    def __call__(self, value: Any) -> str:
        if value is None or value == "":
            return NONE
        return str(value) if value in self.allowed else OTHER


# ---------------------------------------------------------------------------------------------
# What a finished call record says about failovers.


def failovers_of(trace: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(target, reason)`` for every failover in one call's trace (see the module doc).

    * an alternate leg (``via_alternate``) -> ``("alternate", <outcome of the primary leg of the
      same user in the same ring>)`` (``unknown`` if the primary leg is not in the trace);
    * a line failover (the ``failover`` trace entry of a failover number, or the failover
      voicemail / hang-up of a department or line) -> ``("line", reason)``: ``test`` under a
      failover test, ``nobody_available`` when no leg rang since the last department/extension
      node, else ``no_answer``.
    """
    out: list[tuple[str, str]] = []
    legs_since_node = 0
    testing = False
    in_failover = False
    pending: dict[str | None, str] = {}  # user -> outcome of their latest primary leg
    for t in trace:
        kind = t.get("kind")
        if kind == "node":
            legs_since_node = 0
            in_failover = False
        elif kind == "failover_test":
            testing = True
            out.append(("line", "test"))
            in_failover = True
        elif kind == "leg":
            if t.get("role") == "failover":
                continue
            legs_since_node += 1
            if t.get("via_alternate") or t.get("role") == "alternate":
                out.append(("alternate", pending.get(t.get("user"), "unknown")))
            else:
                pending[t.get("user")] = str(t.get("outcome"))
        elif in_failover or testing:
            continue
        elif kind == "failover" or (kind == "voicemail" and "greeting" in t
                                    and "node" not in t):
            # department.failover() logs ``failover`` (number, or result=hangup) and/or
            # ``voicemail`` with ``greeting`` (a voicemail node logs ``node``, the runtime's
            # recording ``recording``); count the first entry of one failover only.
            out.append(("line", "no_answer" if legs_since_node else "nobody_available"))
            in_failover = True
    return out


class CallTimes:
    """What one finished call says about time (seconds; None when it did not happen)."""

    __slots__ = ("department", "flow", "setup", "talk", "wait")

    def __init__(self, flow: str | None, department: str | None, setup: float | None,
                 wait: float | None, talk: float | None) -> None:
        self.flow, self.department = flow, department
        self.setup, self.wait, self.talk = setup, wait, talk


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def call_times(record: Mapping[str, Any], trace: list[dict[str, Any]]) -> CallTimes:
    """``flow``: the DID's flow (the first ``flow`` entry); ``department``: the department
    whose visit the answer happened in (None: answered elsewhere, e.g. an extension node);
    ``setup``: the first ringing leg's start - the call's start; ``wait``/``talk``: the
    record's (:func:`controller.core.calllog.summarise`)."""
    flow: str | None = None
    dept: str | None = None
    answered_dept: str | None = None
    first_leg: float | None = None
    for t in trace:
        kind = t.get("kind")
        if kind == "flow" and flow is None:
            flow = t.get("flow")
        elif kind == "node":
            dept = None
        elif kind == "department":
            dept = t.get("department")
        elif kind == "leg":
            started = _num(t.get("started"))
            if started is not None and (first_leg is None or started < first_leg):
                first_leg = started
        elif kind == "answer" and answered_dept is None:
            answered_dept = dept
    start = _num(record.get("started"))
    setup = first_leg - start if first_leg is not None and start is not None else None
    return CallTimes(flow, answered_dept, setup, _num(record.get("wait")),
                     _num(record.get("talk")))


# ---------------------------------------------------------------------------------------------
# The controller's metrics.


class Metrics:
    """The controller's metric families, fed by :meth:`observe` (a Controller observer)."""

    def __init__(self) -> None:
        r = self.registry = Registry()
        self.calls = r.counter("calls_total", "Finished calls by outcome.", ("outcome",))
        self.ring_attempts = r.counter("ring_attempts_total",
                                       "Ringing legs by outcome and role.", ("outcome", "role"))
        self.failovers = r.counter("failovers_total", "Failovers by target and reason.",
                                   ("target", "reason"))
        self.live_calls = r.gauge("live_calls", "Calls this controller is handling now.")
        self.ari_reconnects = r.counter("ari_reconnects_total",
                                        "ARI event websocket reconnects.")
        self.ari_app_replaced = r.counter(
            "ari_app_replaced_total",
            "Times another websocket took our Stasis application over (then taken back).")
        self.media_events_lost = r.counter(
            "media_events_lost_total",
            "Playbacks and recordings whose end event never came, by how it was found.",
            ("media", "found_by"))
        self.loop_lag = r.gauge("event_loop_lag_seconds",
                                "Last measured event loop scheduling delay.")
        self.loop_lag_max = r.gauge("event_loop_lag_max_seconds",
                                    "Largest event loop scheduling delay of the last minute.")
        self.webhooks = r.counter("webhook_deliveries_total",
                                  "Webhook deliveries by event and result (ok, failed, dropped).",
                                  ("event", "result"))
        self.webhook_attempt_failures = r.counter(
            "webhook_attempt_failures_total", "Failed webhook HTTP attempts (each retry).",
            ("event",))
        self.setup = r.histogram(
            "call_setup_seconds", "Call arrival to its first ringing leg, by flow.",
            SETUP_BUCKETS, ("flow",))
        self.wait = r.histogram(
            "call_wait_seconds", "Call arrival to answer, by flow and answering department.",
            WAIT_BUCKETS, ("flow", "department"))
        self.talk = r.histogram(
            "call_talk_seconds", "Answer to hang-up, by flow and answering department.",
            TALK_BUCKETS, ("flow", "department"))
        self.flow_calls = r.counter("flow_calls_total", "Finished calls by flow and outcome.",
                                    ("flow", "outcome"), MAX_SERIES)
        self.department_calls = r.counter(
            "department_calls_total", "Department visits by outcome (answered, missed).",
            ("department", "outcome"), MAX_SERIES)
        self.build_info = r.gauge("build_info", "callctl, Python and Asterisk versions.",
                                  ("version", "python", "asterisk"))
        self.ari_up = r.gauge("ari_up", "1 while the node's ARI event websocket is connected.",
                              ("node",))
        self.redis_up = r.gauge("redis_up", "1 while Redis answers.")
        self.writeback_pending = r.gauge(
            "redis_writeback_pending",
            "What waits for Redis to come back: call ends, refused calls' records, "
            "failover-test events, sticky agents.")
        self.writeback_dropped = r.counter(
            "redis_writeback_dropped_total",
            "Write-backs dropped because their queue was full while Redis was away.")
        self.flow_ids = BoundedIds()
        self.department_ids = BoundedIds()
        self.live_calls.func = lambda: 0.0
        self.writeback_pending.func = lambda: 0.0
        self.writeback_dropped.func = lambda: 0.0
        self.ari_reconnects.func = lambda: 0.0
        self.ari_app_replaced.func = lambda: 0.0
        self.loop_lag.func = lambda: 0.0
        self.loop_lag_max.func = lambda: 0.0
        self.ari_up.collect = dict
        self.redis_up.func = lambda: 0.0
        self.set_build_info()

    def set_build_info(self, asterisk: str = "") -> None:
        """``build_info``'s one sample (``asterisk``: the version ARI reports, "" unknown)."""
        from controller import version

        self.build_info.values.clear()
        self.build_info.set(1, version=version(), python=platform.python_version(),
                            asterisk=asterisk)

    def known(self, flows: Iterable[str], departments: Iterable[str]) -> None:
        """Ids of a published flow set that get their own ``flow``/``department`` label."""
        self.flow_ids.add(flows)
        self.department_ids.add(departments)

    def observe(self, record: Mapping[str, Any]) -> None:
        """Count one finished call (a Controller observer: never raises on odd records)."""
        result = str(record.get("result") or "unknown")
        self.calls.inc(outcome=result)
        trace = record.get("trace") or []
        for t in trace:
            if t.get("kind") == "leg":
                self.ring_attempts.inc(outcome=str(t.get("outcome") or "unknown"),
                                       role=str(t.get("role") or "primary"))
        for target, reason in failovers_of(trace):
            self.failovers.inc(target=target, reason=reason)
        try:
            self._times(record, trace, result)
        except (TypeError, ValueError, AttributeError):
            pass  # an odd record: the counters above are what it is good for

    def _times(self, record: Mapping[str, Any], trace: list[dict[str, Any]],
               result: str) -> None:
        t = call_times(record, trace)
        flow = self.flow_ids(t.flow)
        self.flow_calls.inc(flow=flow, outcome=result)
        if t.setup is not None:
            self.setup.observe(t.setup, flow=flow)
        dept = self.department_ids(t.department)
        if t.wait is not None:
            self.wait.observe(t.wait, flow=flow, department=dept)
        if t.talk is not None:
            self.talk.observe(t.talk, flow=flow, department=dept)
        for key, fields in call_counts(trace).items():
            if key.startswith("dept:"):
                d = self.department_ids(key[5:])
                for outcome in ("answered", "missed"):
                    if fields.get(outcome):
                        self.department_calls.inc(fields[outcome], department=d,
                                                  outcome=outcome)

    def render(self) -> str:
        return self.registry.render()


class LoopLag:
    """Samples event loop lag: sleep ``interval`` and measure how late we wake up."""

    def __init__(self, interval: float = 0.5, window: float = 60.0) -> None:
        self.interval = interval
        self.samples: deque[tuple[float, float]] = deque()
        self.window = window
        self.last = 0.0
        self._task: asyncio.Task[None] | None = None

    def max(self) -> float:
        cutoff = time.monotonic() - self.window
        while self.samples and self.samples[0][0] < cutoff:
            self.samples.popleft()
        return max((lag for _, lag in self.samples), default=0.0)

    def record(self, lag: float) -> None:
        self.last = max(lag, 0.0)
        self.samples.append((time.monotonic(), self.last))
        self.max()  # trims the window

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(self.interval)
            self.record(loop.time() - t0 - self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
