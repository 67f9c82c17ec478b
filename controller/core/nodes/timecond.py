"""``time`` node: ``holiday`` on a listed date, ``open`` inside ``hours``, else ``closed``.

The clock is ``ctx.now()`` (injected); it is read in ``node.timezone`` (default
``settings.timezone``). A naive datetime from the clock is taken as UTC. Holidays are whole
local days and win over ``hours``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from controller.core.flows.schema import TimeNode
from controller.core.model import CallContext, Continue, NodeGen

__all__ = ["decide", "run"]


def decide(node: TimeNode, now: datetime, default_tz: str = "UTC") -> tuple[str, datetime]:
    """``("open" | "closed" | "holiday", local time)``. Pure."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    local = now.astimezone(ZoneInfo(node.timezone or default_tz))
    if any(h.contains(local.date()) for h in node.holidays):
        return "holiday", local
    if any(w.contains(local) for w in node.hours):
        return "open", local
    return "closed", local


def run(node: TimeNode, ctx: CallContext) -> NodeGen:
    yield from ()
    settings = getattr(ctx.flowset, "settings", None)
    result, local = decide(node, ctx.now(), getattr(settings, "timezone", None) or "UTC")
    ctx.log("time", node=node.id, result=result, local=local.isoformat(timespec="minutes"))
    return Continue(result)
