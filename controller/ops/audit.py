"""The audit log of user and blocklist changes: the ``audit`` stream (who, when, what, old and
new value), written by :mod:`controller.ops.users` and :mod:`controller.ops.blocklist`."""

from __future__ import annotations

import json
from typing import Any

from controller.ops.context import MAX_LIMIT, Context, redis_errors
from controller.ops.errors import OpsError

AUDIT_MAXLEN = 10_000
"""The audit stream's length, about (``XADD MAXLEN ~``)."""


@redis_errors
async def list_audit(ctx: Context, *, limit: int = 50,
                     target: str | None = None) -> list[dict[str, Any]]:
    """Audit entries, newest first (``target``: one user or blocklist pattern)."""
    if not 1 <= int(limit) <= MAX_LIMIT:
        raise OpsError(400, f"limit must be 1..{MAX_LIMIT}", "limit")
    out: list[dict[str, Any]] = []
    last = "+"
    while len(out) < limit:
        rows = await ctx.r.xrevrange(ctx.keys.audit, max=last, count=500)
        for rid, f in rows:
            if target is None or f.get("target") == target:
                e: dict[str, Any] = {"id": rid, **f}
                for k in ("old", "new"):
                    try:
                        e[k] = json.loads(f.get(k, "null"))
                    except ValueError:
                        pass
                e["at"] = float(f.get("at", 0))
                out.append(e)
        if len(rows) < 500:
            break
        last = "(" + rows[-1][0]
    return out[:limit]
