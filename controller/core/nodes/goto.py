"""``goto`` node: jump to another node, or another flow. The engine does the jump."""

from __future__ import annotations

from controller.core.flows.schema import GotoNode
from controller.core.model import CallContext, Continue, NodeGen

__all__ = ["run"]


def run(node: GotoNode, ctx: CallContext) -> NodeGen:
    yield from ()
    return Continue("goto")
