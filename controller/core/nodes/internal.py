"""What a registered phone's call runs when it is not a flow (see :mod:`controller.core.internal`).

* ``run_extension``: the dialled user, through the extension node (:mod:`.extension`) with
  ``fallback: failover``: opt-out, availability, busy and alternate apply, then the user's
  voicemail (or 486/480 when their voicemail is off). Calling one's own extension rings
  nobody: it goes to one's voicemail.
* ``run_external``: the number through the PSTN trunk for :data:`EXTERNAL_RING_TIME` s; not
  answered: the phone is hung up with the far end's cause (busy 17, ...; 19 for no answer).

Both visit one synthetic node (``ext-<extension>`` / ``external``), so the record's ``path``
and trace read like a flow's.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from controller.core.model import (
    CallContext,
    Command,
    Continue,
    DialTarget,
    Hangup,
    Indicate,
    RingGroup,
    RingResult,
    Stop,
)
from controller.core.nodes import extension
from controller.core.nodes.base import FAILOVER
from controller.core.nodes.extension import ExtensionNode
from controller.core.nodes.ringing import DEFAULT_RING_TIME, log_leg
from controller.core.outcomes import classify

__all__ = ["EXTERNAL_RING_TIME", "SELF_CALL", "run_extension", "run_external"]

EXTERNAL_RING_TIME = 60
SELF_CALL = "self_call"
"""Skip reason: the dialled user is the caller."""


def _visit(ctx: CallContext, node_id: str, node_type: str) -> None:
    ctx.path.append(node_id)
    ctx.log("node", id=node_id, type=node_type)


def run_extension(uid: str, ctx: CallContext, *,
                  caller_user: str | None = None) -> Generator[Command, Any, Stop]:
    user = ctx.flowset.users[uid]
    node = ExtensionNode(id=f"ext-{user.extension or uid}", user=uid,
                         ring_time=DEFAULT_RING_TIME, fallback=FAILOVER)
    _visit(ctx, node.id, "extension")
    ring = uid != caller_user
    if not ring:
        ctx.log("skip", user=uid, reason=SELF_CALL)
    outcome = yield from extension.run(node, ctx, ring=ring)
    if isinstance(outcome, Continue):  # not with fallback: failover; never drop the call
        yield Hangup(extension.UNAVAILABLE_CAUSE)
        return Stop("hangup")
    return outcome


def run_external(number: str, ctx: CallContext, *,
                 emergency: bool = False) -> Generator[Command, Any, Stop]:
    settings = ctx.flowset.settings
    _visit(ctx, "external", "external")
    ctx.log("external", number=number, emergency=emergency)
    yield Indicate()
    res: RingResult = yield RingGroup((DialTarget("pstn", number),), EXTERNAL_RING_TIME,
                                      caller_id=settings.phones_caller_id)
    cause = extension.UNAVAILABLE_CAUSE
    for leg in res.legs:
        outcome = classify(leg, settings.outcomes, rejected_is_busy=settings.rejected_is_busy)
        log_leg(ctx, leg, outcome)
        if outcome == "busy":
            cause = extension.BUSY_CAUSE
        elif leg.cause and leg.cause != 16 and not leg.timed_out:
            cause = leg.cause
    if res.answered is not None:
        ctx.answered_by = number
        return Stop("connected")
    yield Hangup(cause)
    return Stop("hangup")
