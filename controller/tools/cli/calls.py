"""`callctl calls` and `callctl call ID`."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from controller.config import Settings
from controller.tools.cli.common import (
    clock,
    run_op,
)


def format_trace(call_id: str, record: dict[str, Any] | None,
                 trace: list[dict[str, Any]]) -> str:
    """`callctl call ID` for humans: the call's outcome, then one line per decision.

    Ringing legs show when they started and stopped ringing and for how long (``rang``);
    skips show the reason (``opted_out``, ``outside_window``, ``busy``, ...)."""
    lines = []
    if record is not None:
        started, ended = record.get("started"), record.get("ended")
        took = (f"  duration={ended - started:.1f}s"
                if isinstance(started, int | float) and isinstance(ended, int | float) else "")
        lines.append(f"call {call_id}  did={record.get('did')}  "
                     f"caller={record.get('caller') or '-'}  result={record.get('result')}  "
                     f"answered_by={record.get('answered_by') or '-'}  "
                     f"started={clock(started)}{took}")
    else:
        lines.append(f"call {call_id}  (no call log record)")
    for t in trace:
        parts = []
        for k, v in t.items():
            if k in ("at", "kind"):
                continue
            parts.append(f"{k}={clock(v)}" if k in ("started", "ended") else f"{k}={v}")
        if t.get("kind") == "leg":
            start, stop = t.get("started"), t.get("ended")
            if isinstance(start, int | float) and isinstance(stop, int | float) and stop > 0:
                parts.append(f"rang={max(stop - start, 0.0):.2f}s")
        lines.append(f"{clock(t.get('at'))}  {t.get('kind', '?'):<8} {' '.join(parts)}")
    return "\n".join(lines)


def cmd_calls(args: argparse.Namespace, settings: Settings) -> int:
    """`callctl calls [--live] [--since 2h] [--limit N] [--format text|json|csv]`."""
    from controller.ops import calls as ops_calls
    from controller.ops.calls import records_csv
    from controller.ops.parse import parse_since

    fmt = "json" if args.json else args.format

    async def op(ops: Any) -> Any:
        since = parse_since(args.since) if args.since else None
        return await ops_calls.list_calls(ops, live=args.live, since=since, limit=args.limit)

    def human(rows: Any) -> str:
        if fmt == "csv":
            return records_csv(rows).rstrip("\n")
        return format_calls(rows)

    return run_op(settings, op, fmt == "json", human)


def _age(seconds: float) -> str:
    """kubectl's AGE: ``42s``, ``5m``, ``3h``, ``2d``."""
    s = max(int(seconds), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


CALLS_HEADER = ("STARTED", "AGE", "CALL", "DID", "CALLER", "RESULT", "ANSWERED BY",
                "DURATION")


def format_calls(rows: Sequence[dict[str, Any]], now: float | None = None) -> str:
    """``callctl calls`` for humans: a header row, then one aligned row per call; local date
    and time, how long ago, and the duration (live calls: so far)."""
    if not rows:
        return "no calls"
    now = time.time() if now is None else now
    table = [CALLS_HEADER]
    for r in rows:
        started = r.get("started")
        try:
            t0: float | None = float(started) if started not in (None, "") else None
        except (TypeError, ValueError):
            t0 = None
        dur = r.get("duration")
        if isinstance(dur, int | float):
            took = f"{dur:.1f}s"
        elif t0 is not None and "result" not in r:
            took = f"{max(now - t0, 0.0):.0f}s+"
        else:
            took = "-"
        table.append((
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t0)) if t0 else "-",
            _age(now - t0) if t0 else "-",
            str(r.get("call_id") or "-"), str(r.get("did") or "-"),
            str(r.get("caller") or "-"), str(r.get("result") or "live"),
            str(r.get("answered_by") or "-"), took))
    widths = [max(len(row[i]) for row in table) for i in range(len(CALLS_HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in table)


def cmd_call(args: argparse.Namespace, settings: Settings) -> int:
    """`callctl call ID`: the record, decision trace and events of one call."""

    async def op(ops: Any) -> Any:
        from controller.ops.calls import get_call

        d = await get_call(ops, args.call_id)
        return {"call": d["record"], "live": d["live"], "trace": d["trace"],
                "events": d["events"]}

    def human(d: Any) -> str:
        text = format_trace(args.call_id, d["call"], d["trace"])
        if d["live"] and not d["call"]:
            text += f"\nlive: {' '.join(f'{k}={v}' for k, v in d['live'].items())}"
        if d["events"]:
            text += "\n\nevents:\n" + "\n".join(
                f"  +{e['t']:7.3f}s  {e['text']}" if isinstance(e["t"], int | float)
                else f"  {e['text']}" for e in d["events"])
        return text

    return run_op(settings, op, args.json, human)
