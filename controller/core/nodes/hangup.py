"""``hangup`` node: hang up with a Q.850 cause (default 16, normal clearing)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from controller.core.model import CallContext, Hangup, NodeGen, Stop
from controller.core.nodes.base import NodeBase

__all__ = ["MODEL", "HangupNode", "run"]


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
