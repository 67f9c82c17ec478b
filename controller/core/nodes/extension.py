"""Extension node: ring one user, honouring opt-out, availability, busy and their alternate.

Node attributes read: ``id``, ``user``, ``fallback`` (node id, ``"failover"`` or None),
``ring_time`` (optional, default 20 s). An opted-out, off-hours or busy user is skipped at
once: ``Continue("fallback")``. With ``fallback == "failover"`` the caller is offered the
user's voicemail (mailbox = ``user.mailbox``), which opt-out does not block; a user with
``voicemail: false`` has none: the caller is hung up with 486 (cause 17) when the user was
busy, else 480 (cause 19). A registered phone dialling a user's extension runs this node too
(:func:`controller.core.nodes.internal.run_extension`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from controller.core.flows import editor_parts as ep
from controller.core.model import CallContext, Continue, Hangup, Indicate, NodeGen, Stop
from controller.core.nodes.base import FAILOVER, Checker, FallbackRef, Id, NodeBase, Path
from controller.core.nodes.department import failover
from controller.core.nodes.ringing import DEFAULT_RING_TIME, ring_users

__all__ = ["BUSY_CAUSE", "MODEL", "SCHEMA", "UNAVAILABLE_CAUSE", "ExtensionNode", "run",
           "unavailable_cause"]

BUSY_CAUSE = 17
"""Q.850 user busy: SIP 486."""
UNAVAILABLE_CAUSE = 19
"""Q.850 no answer from user: SIP 480 Temporarily Unavailable (opted out, off hours,
unreachable, not answering)."""


class ExtensionNode(NodeBase):
    """Ring one user for ``ring_time`` seconds; no answer -> ``fallback``."""

    type: Literal["extension"] = "extension"
    user: Id
    ring_time: int = Field(20, ge=1, le=600)
    fallback: FallbackRef = FAILOVER
    BRANCHES: ClassVar[tuple[str, ...]] = ("fallback",)
    EXITS: ClassVar[bool] = True

    def lint_refs(self, check: Checker, loc: Path) -> None:
        if self.user not in check.users:
            check.add((*loc, "user"), f"unknown user {self.user!r}"
                      + check.hint(self.user, check.users), self.user)


MODEL = ExtensionNode


def run(node: Any, ctx: CallContext, *, ring: bool = True) -> NodeGen:
    """``ring=False``: the user is not rung at all (they are the caller), only the
    fallback applies."""
    user = ctx.flowset.users.get(node.user)
    if user is None:  # the linter prevents this
        ctx.log("error", node=node.id, error=f"unknown user {node.user!r}")
        return Continue("fallback")
    mark = len(ctx.trace)
    yield Indicate()
    ring_time = getattr(node, "ring_time", None) or DEFAULT_RING_TIME
    if ring and (yield from ring_users([user.id], ctx, ring_time=ring_time)) is not None:
        return Stop("connected")
    if getattr(node, "fallback", None) == FAILOVER:
        if not user.voicemail:
            cause = unavailable_cause(ctx, user.id, mark)
            ctx.log("failover", user=user.id, result="hangup", cause=cause)
            yield Hangup(cause)
            return Stop("hangup")
        return (yield from failover(None, ctx, mailbox=user.mailbox or user.id))
    ctx.log("fallback", node=node.id, user=user.id)
    return Continue("fallback")


def unavailable_cause(ctx: CallContext, uid: str, since: int = 0) -> int:
    """What a caller who cannot reach ``uid`` hears: busy (17) when the user was skipped as
    busy or their phone answered busy (trace entries from ``since`` on), else 19."""
    for t in ctx.trace[since:]:
        d = t.data
        if d.get("user") == uid and (
            (t.kind == "skip" and d.get("reason") == "busy")
            or (t.kind == "leg" and d.get("outcome") == "busy")
        ):
            return BUSY_CAUSE
    return UNAVAILABLE_CAUSE


# ---------------------------------------------------------------------------------------------
# The editor JSON Schema (`callctl schema`, controller.core.flows.editor_schema): what the
# models alone would not say.

_EXTENSION_NODE_FIELDS: dict[str, Any] = {
    **ep.NODE_COMMON,
    "user": ep.an_id("The user to ring", "alice"),
    "ring_time": "Seconds to ring, 1-600 (e.g. 20).",
    "fallback": ep.node_ref("Where to go when the user does not answer: a node id, or "
                            "failover"),
}

SCHEMA: dict[str, ep.Definition] = {
    "ExtensionNode": ep.Definition(
        "Ring one user for ring_time seconds; no answer: fallback.",
        _EXTENSION_NODE_FIELDS,
    ),
}
