"""``goto`` node: jump to another node, or another flow. The engine does the jump."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import model_validator

from controller.core.model import CallContext, Continue, NodeGen
from controller.core.nodes.base import Id, NodeBase, NodeRef, Path

__all__ = ["MODEL", "GotoNode", "run"]


class GotoNode(NodeBase):
    """Jump to a node of this flow, or to another flow (its entry, or ``node`` in it)."""

    type: Literal["goto"] = "goto"
    node: NodeRef | None = None
    flow: Id | None = None

    @model_validator(mode="after")
    def _target(self) -> GotoNode:
        if self.node is None and self.flow is None:
            raise ValueError("a goto needs `node`, `flow`, or both")
        return self

    def targets(self) -> Iterator[tuple[Path, str]]:
        if self.flow is None and self.node is not None:
            yield ("node",), self.node

    def branch(self, key: str) -> str | None:
        return self.node if key == "goto" and self.flow is None else None


MODEL = GotoNode


def run(node: GotoNode, ctx: CallContext) -> NodeGen:
    yield from ()
    return Continue("goto")
