"""``hangup`` node: hang up with a Q.850 cause (default 16, normal clearing)."""

from __future__ import annotations

from controller.core.flows.schema import HangupNode
from controller.core.model import CallContext, Hangup, NodeGen, Stop

__all__ = ["run"]


def run(node: HangupNode, ctx: CallContext) -> NodeGen:
    ctx.log("hangup", node=node.id, cause=node.cause)
    yield Hangup(node.cause)
    return Stop("hangup")
