"""Extension node: ring one user, honouring opt-out, availability, busy and their alternate.

Node attributes read: ``id``, ``user``, ``fallback`` (node id, ``"failover"`` or None),
``ring_time`` (optional, default 20 s). An opted-out, off-hours or busy user is skipped at
once: ``Continue("fallback")``. With ``fallback == "failover"`` the caller is offered the
user's voicemail (mailbox = ``user.mailbox``), which opt-out does not block.
"""

from __future__ import annotations

from typing import Any

from controller.model import CallContext, Continue, Indicate, NodeGen, Stop
from controller.nodes.department import FAILOVER, failover
from controller.nodes.ringing import DEFAULT_RING_TIME, ring_users

__all__ = ["run"]


def run(node: Any, ctx: CallContext) -> NodeGen:
    user = ctx.flowset.users.get(node.user)
    if user is None:  # the linter prevents this
        ctx.log("error", node=node.id, error=f"unknown user {node.user!r}")
        return Continue("fallback")
    yield Indicate()
    ring_time = getattr(node, "ring_time", None) or DEFAULT_RING_TIME
    if (yield from ring_users([user.id], ctx, ring_time=ring_time)) is not None:
        return Stop("connected")
    if getattr(node, "fallback", None) == FAILOVER:
        return (yield from failover(None, ctx, mailbox=user.mailbox or user.id))
    ctx.log("fallback", node=node.id, user=user.id)
    return Continue("fallback")
