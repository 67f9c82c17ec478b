"""``message`` node: play prompts (no digits), then ``next`` (none: the call is hung up)."""

from __future__ import annotations

from controller.core.flows.schema import MessageNode
from controller.core.model import CallContext, Continue, NodeGen, Prompt
from controller.core.prompts import media

__all__ = ["run"]


def run(node: MessageNode, ctx: CallContext) -> NodeGen:
    yield Prompt(media=media(node.prompt, ctx), max_digits=0)
    return Continue("next")
