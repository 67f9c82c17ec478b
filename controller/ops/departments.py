"""Departments: members and their state now, answered/missed counts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from controller.core.eligibility import (
    check,
    effective_receive_calls,
)
from controller.core.overrides import user_facts
from controller.ops.context import Context, redis_errors
from controller.ops.flows import published
from controller.ops.users import user_raw


@redis_errors
async def list_departments(ctx: Context) -> list[dict[str, Any]]:
    """Departments: strategy, members with their state now, answered/missed counts
    (per department and per agent; agents opted out now are left out of the counts)."""
    _, fs = await published(ctx)
    members = sorted({m for d in fs.departments.values() for m in d.members
                      if m in fs.users})
    raw = dict(zip(members, await user_raw(ctx, members), strict=True))
    async with ctx.r.pipeline(transaction=False) as pipe:
        for dept_id in fs.departments:
            pipe.hgetall(ctx.keys.dept_stats(dept_id))
        stats = dict(zip(fs.departments, await pipe.execute(), strict=True))
    at = datetime.now(UTC)
    out: list[dict[str, Any]] = []
    for d in fs.departments.values():
        st = stats.get(d.id) or {}
        people: list[dict[str, Any]] = []
        agents: list[dict[str, Any]] = []
        for m in d.members:
            user = fs.users.get(m)
            if user is None:
                people.append({"id": m, "state": "unknown_user"})
                continue
            busy, last, over, _ = raw[m]
            facts = user_facts(busy, last, over, ctx.keys.user(m))
            e = check(user, facts, at, fs.settings)
            opted_out = not effective_receive_calls(user, facts)
            people.append({"id": m, "name": user.name, "state": "busy" if busy else "idle",
                           "eligible_now": e.ok, "reason": e.reason,
                           "opted_out": opted_out})
            if not opted_out:
                agents.append({"id": m, "answered": int(st.get(f"{m}:answered", 0)),
                               "missed": int(st.get(f"{m}:missed", 0))})
        fo = d.failover
        out.append({
            "id": d.id, "name": d.name, "strategy": d.strategy,
            "sticky": d.sticky.ttl if d.sticky else None, "ring_time": d.ring_time,
            "rounds": d.rounds, "total_timeout": d.total_timeout,
            "failover": {"number": fo.number if fo else None,
                         "voicemail": fo.voicemail if fo else True},
            "members": people, "agents": agents,
            "calls": int(st.get("calls", 0)), "answered": int(st.get("answered", 0)),
            "missed": int(st.get("missed", 0)),
        })
    return out
