"""Calls: live, recent, since a time, one call; the call log as CSV."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from controller.core.calllog import iso
from controller.core.patterns import CALL_ID_RE
from controller.ops.context import MAX_LIMIT, Context, redis_errors
from controller.ops.errors import OpsError
from controller.ops.timeline import call_events

CSV_FIELDS = ("call_id", "started", "ended", "duration", "wait", "talk", "did", "caller",
              "result", "answered_by", "rang", "path", "failovers", "voicemail",
              "blocked_by", "flow_version")


def records_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """Call records as CSV (times in ISO UTC, lists joined with ' > ' or ';')."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for r in rows:
        rang = ";".join(f"{x.get('user') or x.get('address')}:{x.get('outcome')}"
                        for x in r.get("rang") or [])
        fos = ";".join(str(f.get("number") or f.get("line") or f.get("reason"))
                       for f in r.get("failovers") or [])
        vm = r.get("voicemail") or {}
        w.writerow([
            r.get("call_id"), iso(r.get("started")), iso(r.get("ended")), r.get("duration"),
            r.get("wait"), r.get("talk"), r.get("did"), r.get("caller"), r.get("result"),
            r.get("answered_by") or "", rang, " > ".join(r.get("path") or []), fos,
            vm.get("mailbox", "") if isinstance(vm, dict) else "", r.get("blocked_by") or "",
            r.get("flow_version", ""),
        ])
    return out.getvalue()


@redis_errors
async def list_calls(ctx: Context, *, live: bool = False, since: float | None = None,
                     limit: int | None = None) -> list[dict[str, Any]]:
    """Live calls, or finished calls newest first, or (``since``) oldest first."""
    if limit is not None and not 1 <= int(limit) <= MAX_LIMIT:
        raise OpsError(400, f"limit must be 1..{MAX_LIMIT}", "limit")
    if live:
        rows = await ctx.store.live_calls()
        now = time.time()
        out = []
        for r in rows:
            row: dict[str, Any] = dict(r)
            row["call_id"] = row.pop("id", None)
            try:
                row["started"] = float(row.get("started", 0))
                row["age"] = round(now - row["started"], 1)
            except (TypeError, ValueError):
                pass
            row["result"] = "live"
            out.append(row)
        return out[: limit or None]
    if since is not None:
        raw = await ctx.r.xrange(ctx.keys.calllog, min=f"{int(since * 1000)}",
                                  max="+", count=limit or MAX_LIMIT)
        return [json.loads(f["record"]) for _, f in raw]
    return await ctx.store.recent_calls(limit or 50)


@redis_errors
async def get_call(ctx: Context, call_id: str) -> dict[str, Any]:
    """One call: its record (or live state), decision trace and event timeline."""
    if not isinstance(call_id, str) or not CALL_ID_RE.fullmatch(call_id):
        raise OpsError(400, f"{call_id!r} is not a call id", "call_id")
    live = await ctx.r.hgetall(ctx.keys.call(call_id))
    trace = await ctx.store.get_trace(call_id)
    record = await ctx.store.find_call(call_id) if trace is not None or not live else None
    if not live and trace is None and record is None:
        raise OpsError(404, f"no call {call_id!r} (live or in the call log)", "call_id")
    started = (record or {}).get("started")
    if started is None and live.get("started"):
        started = float(live["started"])
    return {"call_id": call_id, "live": dict(live) if live else None, "record": record,
            "trace": trace or [], "events": call_events(trace or [], started)}
