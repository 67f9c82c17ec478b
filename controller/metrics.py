"""Prometheus metrics: counters fed by finished call records, gauges read at scrape time.

No client library: the text exposition format (version 0.0.4) is a few lines. Everything here
is pure except :class:`LoopLag`, which samples the event loop.

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
=====================================  =======  ==============================================
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "callctl_"


def escape_label(value: str) -> str:
    """Label value escaping of the text format: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


class Metric:
    """One metric family: a name, help, type and labelled samples."""

    def __init__(self, name: str, help_text: str, kind: str,
                 labelnames: tuple[str, ...] = ()) -> None:
        if kind not in ("counter", "gauge"):
            raise ValueError(f"unsupported metric type {kind!r}")
        self.name = PREFIX + name
        self.help = help_text
        self.kind = kind
        self.labelnames = labelnames
        self.values: dict[tuple[str, ...], float] = {}
        self.func: Callable[[], float] | None = None

    def _key(self, labels: Mapping[str, Any]) -> tuple[str, ...]:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name}: labels {sorted(labels)} != {list(self.labelnames)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def inc(self, amount: float = 1.0, **labels: Any) -> None:
        if self.kind == "counter" and amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def set(self, value: float, **labels: Any) -> None:
        if self.kind != "gauge":
            raise ValueError("only a gauge can be set")
        self.values[self._key(labels)] = float(value)

    def get(self, **labels: Any) -> float:
        if self.func is not None and not self.labelnames:
            return float(self.func())
        return self.values.get(self._key(labels), 0.0)

    def samples(self) -> Iterable[tuple[tuple[str, ...], float]]:
        if self.func is not None:
            yield (), float(self.func())
            return
        yield from sorted(self.values.items())

    def render(self) -> str:
        lines = [f"# HELP {self.name} {escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]
        for key, value in self.samples():
            if key:
                labels = ",".join(f'{n}="{escape_label(v)}"'
                                  for n, v in zip(self.labelnames, key, strict=True))
                lines.append(f"{self.name}{{{labels}}} {format_value(value)}")
            else:
                lines.append(f"{self.name} {format_value(value)}")
        return "\n".join(lines) + "\n"


class Registry:
    def __init__(self) -> None:
        self.metrics: dict[str, Metric] = {}

    def add(self, metric: Metric) -> Metric:
        if metric.name in self.metrics:
            raise ValueError(f"metric {metric.name} registered twice")
        self.metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help_text: str, labelnames: tuple[str, ...] = ()) -> Metric:
        return self.add(Metric(name, help_text, "counter", labelnames))

    def gauge(self, name: str, help_text: str, labelnames: tuple[str, ...] = ()) -> Metric:
        return self.add(Metric(name, help_text, "gauge", labelnames))

    def render(self) -> str:
        return "".join(m.render() for m in self.metrics.values())


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
        self.live_calls.func = lambda: 0.0
        self.ari_reconnects.func = lambda: 0.0
        self.ari_app_replaced.func = lambda: 0.0
        self.loop_lag.func = lambda: 0.0
        self.loop_lag_max.func = lambda: 0.0

    def observe(self, record: Mapping[str, Any]) -> None:
        """Count one finished call (a Controller observer: never raises on odd records)."""
        self.calls.inc(outcome=str(record.get("result") or "unknown"))
        trace = record.get("trace") or []
        for t in trace:
            if t.get("kind") == "leg":
                self.ring_attempts.inc(outcome=str(t.get("outcome") or "unknown"),
                                       role=str(t.get("role") or "primary"))
        for target, reason in failovers_of(trace):
            self.failovers.inc(target=target, reason=reason)

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
