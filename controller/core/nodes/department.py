"""Department node: ring a department by its strategy, then fall back or fail over.

Node attributes read: ``id``, ``department`` (department id), ``fallback`` (a node id, the
literal ``"failover"``, or None). Outcomes: ``Stop("connected")`` when someone answered;
with ``fallback == "failover"`` the failover's own Stop; else ``Continue("fallback")``.

Failover (as Dialpad's shared-line failover): the PSTN failover number rings first (60 s);
if it does not answer, or there is none, and voicemail is on, the greeting plays and the
caller records into the line's mailbox (``failover.mailbox`` > ``department.mailbox`` >
department id). A department without a ``failover`` block gets the default: voicemail with
the default greeting. Stops: ``connected`` (the number answered), ``voicemail``, ``hangup``
(number failed and voicemail off: the caller gets 480, ``FAILOVER_UNAVAILABLE_CAUSE``).
The plan itself (:func:`controller.core.flows.departments.failover_plan`) is shared with the
outage path, which carries it out from AstDB when the controller is down.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from controller.core.flows import editor_parts as ep
from controller.core.flows.departments import (
    DEFAULT_FAILOVER_PROMPT,
    FAILOVER_UNAVAILABLE_CAUSE,
    Department,
    Failover,
    FailoverPlan,
    department_mailbox,
    failover_plan,
)
from controller.core.model import (
    CallContext,
    Continue,
    DialTarget,
    Hangup,
    Indicate,
    NodeGen,
    Prompt,
    Record,
    RingGroup,
    Stop,
)
from controller.core.nodes.base import FAILOVER, Checker, FallbackRef, Id, NodeBase, Path
from controller.core.nodes.ringing import alternate_caller_id, log_leg, ring_users
from controller.core.outcomes import classify

__all__ = [
    "DEFAULT_GREETING_PROMPT",
    "FAILOVER_RING_TIME",
    "MODEL",
    "SCHEMA",
    "DepartmentNode",
    "department_mailbox",
    "failover",
    "run",
    "run_failover",
]

FAILOVER_RING_TIME = 60
DEFAULT_GREETING_PROMPT = DEFAULT_FAILOVER_PROMPT
"""Prompt name of :data:`controller.core.flows.departments.DEFAULT_FAILOVER_GREETING`."""


class DepartmentNode(NodeBase):
    """Ring a department (its strategy); nobody answers -> ``fallback``."""

    type: Literal["department"] = "department"
    department: Id
    fallback: FallbackRef = FAILOVER
    BRANCHES: ClassVar[tuple[str, ...]] = ("fallback",)
    EXITS: ClassVar[bool] = True

    def lint_refs(self, check: Checker, loc: Path) -> None:
        if self.department not in check.departments:
            check.add((*loc, "department"), f"unknown department {self.department!r}"
                      + check.hint(self.department, check.departments), self.department)


MODEL = DepartmentNode


def run(node: Any, ctx: CallContext) -> NodeGen:
    dept: Department | None = ctx.flowset.departments.get(node.department)
    if dept is None:  # the linter prevents this; never drop the call over it
        ctx.log("error", node=node.id, error=f"unknown department {node.department!r}")
        return Continue("fallback")
    if dept.id in ctx.failover_tests:  # `callctl failover test start <department>`
        ctx.log("failover_test", line=dept.id)
        return (yield from failover(dept.failover, ctx, mailbox=department_mailbox(dept)))
    yield Indicate()
    ctx.log("department", node=node.id, department=dept.id, strategy=dept.strategy,
            sticky=dept.sticky is not None)
    if (yield from ring_users(dept.members, ctx, dept=dept)) is not None:
        return Stop("connected")
    if getattr(node, "fallback", None) == FAILOVER:
        return (yield from failover(dept.failover, ctx, mailbox=department_mailbox(dept)))
    ctx.log("fallback", node=node.id, department=dept.id)
    return Continue("fallback")


def failover(fo: Failover | None, ctx: CallContext, *, mailbox: str) -> NodeGen:
    """Failover number, then voicemail (see the module docstring)."""
    return (yield from run_failover(failover_plan(fo, mailbox), ctx))


def run_failover(plan: FailoverPlan, ctx: CallContext) -> NodeGen:
    """Carry out a failover plan on a live call (the outage path does it in the dialplan)."""
    settings = ctx.flowset.settings
    if plan.number:
        ctx.log("failover", number=plan.number)
        res = yield RingGroup(
            (DialTarget("pstn", plan.number, role="failover"),),
            FAILOVER_RING_TIME,
            caller_id=alternate_caller_id(settings, ctx),
        )
        for leg in res.legs:
            log_leg(ctx, leg, classify(leg, settings.outcomes,
                                       rejected_is_busy=settings.rejected_is_busy))
        if res.answered is not None:
            return Stop("connected")
    mailbox = plan.mailbox
    if mailbox is None:
        ctx.log("failover", result="hangup")
        yield Hangup(FAILOVER_UNAVAILABLE_CAUSE)
        return Stop("hangup")

    from controller.core.prompts import resolve_prompt  # the flow engineer's module

    name = plan.greeting
    try:
        media = resolve_prompt(name, ctx)
    except (LookupError, OSError, ValueError) as exc:
        # a missing greeting must not cost the caller their message: beep and record
        ctx.log("error", prompt=name, error=str(exc))
        media = None
    ctx.log("voicemail", mailbox=mailbox, greeting=name)
    if media:
        yield Prompt(media=(media,), max_digits=0)
    rec = yield Record(mailbox)
    if rec is not None:
        ctx.log("recorded", mailbox=mailbox, name=rec.name, duration=rec.duration,
                reason=rec.reason)
    return Stop("voicemail")


# ---------------------------------------------------------------------------------------------
# The editor JSON Schema (`callctl schema`, controller.core.flows.editor_schema): what the
# models alone would not say.

_DEPARTMENT_NODE_FIELDS: dict[str, Any] = {
    **ep.NODE_COMMON,
    "department": ep.an_id("The department to ring", "sales"),
    "fallback": ep.node_ref("Where to go when nobody answers: a node id, or failover (the "
                            "department's failover: number, then voicemail)"),
}

SCHEMA: dict[str, ep.Definition] = {
    "DepartmentNode": ep.Definition(
        "Ring a department (its strategy); nobody answers: fallback.",
        _DEPARTMENT_NODE_FIELDS,
    ),
}
