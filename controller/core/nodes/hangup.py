"""``hangup`` node: hang up with a Q.850 cause (default 16, normal clearing)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from controller.core.flows import editor_parts as ep
from controller.core.model import CallContext, Hangup, NodeGen, Stop
from controller.core.nodes.base import NodeBase

__all__ = ["MODEL", "SCHEMA", "HangupNode", "run"]


class HangupNode(NodeBase):
    """Hang up with a Q.850 cause (16: normal clearing)."""

    type: Literal["hangup"] = "hangup"
    cause: int = Field(16, ge=1, le=127)
    EXITS: ClassVar[bool] = True


MODEL = HangupNode


def run(node: HangupNode, ctx: CallContext) -> NodeGen:
    ctx.log("hangup", node=node.id, cause=node.cause)
    yield Hangup(node.cause)
    return Stop("hangup")


# ---------------------------------------------------------------------------------------------
# The editor JSON Schema (`callctl schema`, controller.core.flows.editor_schema): what the
# models alone would not say.

_HANGUP_NODE_FIELDS: dict[str, Any] = {
    **ep.NODE_COMMON,
    "cause": "Q.850 cause code, 1-127 (16: normal clearing, 17: busy, 21: rejected).",
}

SCHEMA: dict[str, ep.Definition] = {
    "HangupNode": ep.Definition(
        "Hang up with a Q.850 cause.",
        _HANGUP_NODE_FIELDS,
    ),
}
