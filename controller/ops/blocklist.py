"""The blocklist: block, unblock, list (audited, announced to the controllers)."""

from __future__ import annotations

import json
import time
from typing import Any

from controller.ops.audit import AUDIT_MAXLEN
from controller.ops.context import Context, redis_errors
from controller.ops.errors import OpsError
from controller.ops.parse import clean_by
from controller.shell.blocklist import (
    BLOCK_CAUSE,
    Blocklist,
    PatternError,
    normalise_pattern,
    parse_entries,
)


@redis_errors
async def block(ctx: Context, number: str, *, reason: str = "", by: str) -> dict[str, Any]:
    """Block a caller number, a ``prefix*`` or ``withheld``. Idempotent (updates the
    reason)."""
    try:
        pattern = normalise_pattern(number)
    except PatternError as e:
        raise OpsError(400, str(e), "number") from None
    reason = " ".join((reason or "").split())[:200]
    entry = {"reason": reason, "by": clean_by(by), "at": round(time.time(), 3)}
    async with ctx.r.pipeline(transaction=True) as pipe:
        pipe.hexists(ctx.keys.blocklist, pattern)
        pipe.hset(ctx.keys.blocklist, pattern, json.dumps(entry))
        pipe.incr(ctx.keys.blocklist_version)
        pipe.xadd(ctx.keys.audit, {"at": f"{entry['at']:.3f}", "by": entry["by"],
                                "action": "block", "target": pattern,
                                "old": "null", "new": json.dumps({"reason": reason})},
                  maxlen=AUDIT_MAXLEN, approximate=True)
        pipe.publish(ctx.keys.blocklist_changed, pattern)
        res = await pipe.execute()
    return {"pattern": pattern, **entry, "updated": bool(res[0])}


@redis_errors
async def unblock(ctx: Context, number: str, *, by: str) -> dict[str, Any]:
    try:
        pattern = normalise_pattern(number)
    except PatternError as e:
        raise OpsError(400, str(e), "number") from None
    old = await ctx.r.hget(ctx.keys.blocklist, pattern)
    if old is None:
        raise OpsError(404, f"{pattern} is not blocked", "number")
    async with ctx.r.pipeline(transaction=True) as pipe:
        pipe.hdel(ctx.keys.blocklist, pattern)
        pipe.incr(ctx.keys.blocklist_version)
        pipe.xadd(ctx.keys.audit, {"at": f"{time.time():.3f}", "by": clean_by(by),
                                "action": "unblock", "target": pattern, "old": old,
                                "new": "null"},
                  maxlen=AUDIT_MAXLEN, approximate=True)
        pipe.publish(ctx.keys.blocklist_changed, pattern)
        await pipe.execute()
    return {"pattern": pattern, "unblocked": True}


@redis_errors
async def list_blocked(ctx: Context) -> dict[str, Any]:
    """The blocklist with each pattern's rejected attempts, and the total."""
    raw = await ctx.r.hgetall(ctx.keys.blocklist)
    hits = await ctx.r.hgetall(ctx.keys.blocklist_hits)
    total = int(await ctx.r.get(ctx.keys.blocklist_blocked) or 0)
    entries = parse_entries(raw)
    rows = [{"pattern": pat, "reason": e.get("reason", ""), "by": e.get("by"),
             "at": e.get("at"), "blocked_calls": int(hits.get(pat, 0))}
            for pat, e in sorted(entries.items())]
    return {"entries": rows, "blocked_calls": total, "cause": BLOCK_CAUSE}


async def load_blocklist(ctx: Context) -> Blocklist:
    raw = await ctx.r.hgetall(ctx.keys.blocklist)
    return Blocklist(parse_entries(raw))
