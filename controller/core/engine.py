"""The flow engine: walk a call through its flow, node by node. Sans-IO.

    stop = yield from run_call(ctx)

finds the flow for ``ctx.did``, sets the call's language (the flow's, else the default), and
runs node handlers (:data:`controller.core.nodes.HANDLERS`) from the entry. After each node:

* ``Stop(reason)`` ends the call's flow (``connected``, ``voicemail``, ``hangup``, ...);
* ``Continue(key)`` follows the node's branch ``key`` (``node.branch(key)``); a ``goto`` with
  ``flow`` switches flow. A branch that is not set hangs up (cause 16), logged ``no_branch``.

Every visit is appended to ``ctx.path`` and logged (``node``). After :data:`MAX_STEPS` visits
the call is hung up and ``loop_limit`` logged (lint rejects loops without an exit, but menus
that loop back on the caller's choice are legal). No flow for the DID returns
``Stop("no_flow")`` without any command: the runtime rejects such calls.

A registered phone's call with a ``ctx.target`` (controller.core.internal) runs no flow: a user's
extension (:func:`controller.core.nodes.internal.run_extension`) or an external number
(:func:`controller.core.nodes.internal.run_external`); one that dialled a DID runs its flow.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from controller.core.flows.schema import FLOW_VAR, Flow, FlowSet, line_failover
from controller.core.model import CallContext, Command, Continue, Hangup, Stop
from controller.core.nodes import HANDLERS
from controller.core.nodes.department import run_failover
from controller.core.nodes.goto import GotoNode
from controller.core.nodes.internal import run_extension, run_external

__all__ = ["MAX_STEPS", "run_call"]

MAX_STEPS = 100
NORMAL_CLEARING = 16


def _enter(ctx: CallContext, flow: Flow) -> None:
    ctx.vars[FLOW_VAR] = flow.id
    ctx.log("flow", flow=flow.id)


def run_call(ctx: CallContext) -> Generator[Command, Any, Stop]:
    """Run the call's flow to its end. Returns the final :class:`Stop`."""
    fs: FlowSet | None = ctx.flowset
    if fs is not None and ctx.target is not None:
        ctx.language = fs.settings.language
        kind, target = ctx.target
        if kind == "extension":
            return (yield from run_extension(target, ctx,
                                             caller_user=ctx.record.get("from_user")))
        return (yield from run_external(target, ctx, emergency=kind == "emergency"))
    flow = fs.flow_for_did(ctx.did) if fs is not None else None
    if fs is None or flow is None:
        ctx.log("no_flow", did=ctx.did)
        return Stop("no_flow")
    ctx.language = flow.language or fs.settings.language
    _enter(ctx, flow)
    if ctx.did in ctx.failover_tests:  # `callctl failover test start <DID>`
        ctx.log("failover_test", line=ctx.did)
        # what the line's callers get when the controller is down (the same plan as AstDB's)
        stop = yield from run_failover(line_failover(fs, flow), ctx)
        if not isinstance(stop, Stop):  # a failover plan always ends the call
            raise TypeError(f"failover returned {stop!r}, not Stop")
        return stop
    node_id = flow.entry
    steps = 0
    while True:
        node = flow.nodes.get(node_id)
        if node is None:  # lint prevents this
            ctx.log("error", flow=flow.id, error=f"unknown node {node_id!r}")
            yield Hangup(NORMAL_CLEARING)
            return Stop("hangup")
        steps += 1
        if steps > MAX_STEPS:
            ctx.log("loop_limit", node=node_id, steps=MAX_STEPS)
            yield Hangup(NORMAL_CLEARING)
            return Stop("loop_limit")
        ctx.path.append(node_id)
        ctx.log("node", id=node_id, type=node.type)
        try:
            outcome = yield from HANDLERS[node.type](node, ctx)
        except Exception as exc:
            ctx.log("error", node=node_id, error=f"{type(exc).__name__}: {exc}")
            raise
        if isinstance(outcome, Stop):
            ctx.log("stop", node=node_id, reason=outcome.reason)
            return outcome
        if not isinstance(outcome, Continue):
            raise TypeError(f"node {node_id!r} returned {outcome!r}, not Continue/Stop")
        if isinstance(node, GotoNode) and node.flow is not None:
            flow = fs.flows[node.flow]
            _enter(ctx, flow)
            node_id = node.node or flow.entry
            continue
        next_id = node.branch(outcome.key)
        if next_id is None:
            ctx.log("no_branch", node=node_id, key=outcome.key)
            yield Hangup(NORMAL_CLEARING)
            return Stop("hangup")
        node_id = next_id
