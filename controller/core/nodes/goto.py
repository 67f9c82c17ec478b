"""``goto`` node: jump to another node, or another flow. The engine does the jump."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import model_validator

from controller.core.flows import editor_parts as ep
from controller.core.model import CallContext, Continue, NodeGen
from controller.core.nodes.base import Checker, FlowSetView, Id, NodeBase, NodeRef, Path

__all__ = ["MODEL", "SCHEMA", "GotoNode", "run"]


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

    def lint(self, check: Checker, fid: str, loc: Path) -> None:
        if self.flow is None:
            return
        if self.flow not in check.flow_ids:
            check.add((*loc, "flow"), f"unknown flow {self.flow!r}"
                      + check.hint(self.flow, check.flow_ids), self.flow)
            return
        if self.node is not None and self.flow in check.fs.flows:
            targets = check.nodes_of(self.flow)
            if self.node not in targets:
                check.add((*loc, "node"), f"unknown node {self.node!r} in flow {self.flow!r}"
                          + check.hint(self.node, targets), self.node)

    def edges(self, fid: str, fs: FlowSetView) -> list[tuple[str, str]]:
        if self.flow is not None:
            flow = fs.flows.get(self.flow)
            if flow is None:
                return []
            return [(self.flow, self.node or flow.entry)]
        return super().edges(fid, fs)


MODEL = GotoNode


def run(node: GotoNode, ctx: CallContext) -> NodeGen:
    yield from ()
    return Continue("goto")


# ---------------------------------------------------------------------------------------------
# The editor JSON Schema (`callctl schema`, controller.core.flows.editor_schema): what the
# models alone would not say.

_GOTO_NODE_FIELDS: dict[str, Any] = {
    **ep.NODE_COMMON,
    "node": ep.nullable(ep.node_ref("A node of this flow, or of flow when flow is set")),
    "flow": ep.nullable(ep.an_id("Another flow (its entry, or node in it)", "main")),
}

SCHEMA: dict[str, ep.Definition] = {
    "GotoNode": ep.Definition(
        "Jump to a node of this flow, or to another flow (its entry, or node in it).",
        _GOTO_NODE_FIELDS,
        rules={"anyOf": [ep.present("node"), ep.present("flow")]},
    ),
}
