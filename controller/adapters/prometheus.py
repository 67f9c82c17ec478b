"""The Prometheus text exposition format (version 0.0.4): metric families and their rendering.

No client library: the format is a few lines. Pure."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "callctl_"
"""Every family's name starts with it."""
OTHER = "other"
"""The label value a family folds label sets into past its ``max_series``."""
MAX_SERIES = 200
"""Label sets one family holds at most; more are folded into ``other``."""


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
                 labelnames: tuple[str, ...] = (), max_series: int | None = None) -> None:
        if kind not in ("counter", "gauge"):
            raise ValueError(f"unsupported metric type {kind!r}")
        self.name = PREFIX + name
        self.help = help_text
        self.kind = kind
        self.labelnames = labelnames
        self.max_series = max_series
        self.values: dict[tuple[str, ...], float] = {}
        self.func: Callable[[], float] | None = None
        self.collect: Callable[[], Mapping[tuple[str, ...], float]] | None = None
        """Labelled samples read at scrape time (e.g. one per node)."""

    def _key(self, labels: Mapping[str, Any]) -> tuple[str, ...]:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name}: labels {sorted(labels)} != {list(self.labelnames)}")
        key = tuple(str(labels[n]) for n in self.labelnames)
        if self.max_series is not None and key not in self.values and \
                len(self.values) >= self.max_series:
            return tuple(OTHER for _ in self.labelnames)
        return key

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
        if self.collect is not None:
            yield from sorted(self.collect().items())
            return
        yield from sorted(self.values.items())

    def render(self) -> str:
        lines = [f"# HELP {self.name} {escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]
        for key, value in self.samples():
            lines.append(f"{self.name}{_labels(self.labelnames, key)} {format_value(value)}")
        return "\n".join(lines) + "\n"


def _labels(names: tuple[str, ...], values: tuple[str, ...],
            extra: tuple[tuple[str, str], ...] = ()) -> str:
    pairs = [*zip(names, values, strict=True), *extra]
    if not pairs:
        return ""
    return "{" + ",".join(f'{n}="{escape_label(v)}"' for n, v in pairs) + "}"


class Histogram:
    """A histogram family: cumulative ``_bucket{le=...}``, ``_sum`` and ``_count`` per label
    set (at most ``max_series``; further ones fold into ``other``)."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Sequence[float],
                 labelnames: tuple[str, ...] = (), max_series: int = MAX_SERIES) -> None:
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError(f"{name}: buckets must be increasing")
        self.name = PREFIX + name
        self.help = help_text
        self.buckets = tuple(float(b) for b in buckets)
        self.labelnames = labelnames
        self.max_series = max_series
        self.series: dict[tuple[str, ...], list[float]] = {}
        """label values -> [count per bucket (not cumulative)..., +Inf count, sum]."""

    def observe(self, value: float, **labels: Any) -> None:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name}: labels {sorted(labels)} != {list(self.labelnames)}")
        if not math.isfinite(value) or value < 0:
            return  # a clock step backwards or a broken record: nothing to count
        key = tuple(str(labels[n]) for n in self.labelnames)
        if key not in self.series and len(self.series) >= self.max_series:
            key = tuple(OTHER for _ in self.labelnames)
        row = self.series.setdefault(key, [0.0] * (len(self.buckets) + 2))
        row[bisect.bisect_left(self.buckets, value)] += 1
        row[-1] += value

    def count(self, **labels: Any) -> float:
        row = self.series.get(tuple(str(labels[n]) for n in self.labelnames))
        return sum(row[:-1]) if row else 0.0

    def render(self) -> str:
        lines = [f"# HELP {self.name} {escape_help(self.help)}",
                 f"# TYPE {self.name} histogram"]
        for key, row in sorted(self.series.items()):
            total = 0.0
            for le, n in zip((*map(format_value, self.buckets), "+Inf"), row[:-1],
                             strict=True):
                total += n
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, (('le', le),))}"
                             f" {format_value(total)}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} "
                         f"{format_value(row[-1])}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} "
                         f"{format_value(total)}")
        return "\n".join(lines) + "\n"


class Registry:
    def __init__(self) -> None:
        self.metrics: dict[str, Metric | Histogram] = {}

    def add(self, metric: Any) -> Any:
        if metric.name in self.metrics:
            raise ValueError(f"metric {metric.name} registered twice")
        self.metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help_text: str, labelnames: tuple[str, ...] = (),
                max_series: int | None = None) -> Metric:
        m: Metric = self.add(Metric(name, help_text, "counter", labelnames, max_series))
        return m

    def gauge(self, name: str, help_text: str, labelnames: tuple[str, ...] = ()) -> Metric:
        m: Metric = self.add(Metric(name, help_text, "gauge", labelnames))
        return m

    def histogram(self, name: str, help_text: str, buckets: Sequence[float],
                  labelnames: tuple[str, ...] = ()) -> Histogram:
        h: Histogram = self.add(Histogram(name, help_text, buckets, labelnames))
        return h

    def names(self) -> set[str]:
        """Every series name the exposition can hold (``_bucket``/``_sum``/``_count`` for
        histograms)."""
        out: set[str] = set()
        for m in self.metrics.values():
            if isinstance(m, Histogram):
                out |= {f"{m.name}_bucket", f"{m.name}_sum", f"{m.name}_count"}
            else:
                out.add(m.name)
        return out

    def render(self) -> str:
        return "".join(m.render() for m in self.metrics.values())
