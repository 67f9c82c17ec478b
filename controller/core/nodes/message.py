"""``message`` node: play prompts (no digits), then ``next`` (none: the call is hung up)."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, model_validator

from controller.core.flows import editor_parts as ep
from controller.core.model import CallContext, Continue, NodeGen, Prompt
from controller.core.nodes.base import NodeBase, NodeRef, Path, Prompts
from controller.core.prompts import media

__all__ = ["MODEL", "SCHEMA", "MessageNode", "run"]


class MessageNode(NodeBase):
    """Play one or more prompts, then go to ``next`` (none: hang up)."""

    type: Literal["message"] = "message"
    prompt: Prompts = Field(validation_alias=AliasChoices("prompt", "prompts"))
    next: NodeRef | None = None
    BRANCHES: ClassVar[tuple[str, ...]] = ("next",)

    @model_validator(mode="before")
    @classmethod
    def _one_of(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "prompt" in data and "prompts" in data:
            raise ValueError("give `prompt` or `prompts`, not both")
        return data

    def prompts(self) -> Iterator[tuple[Path, str]]:
        for i, name in enumerate(self.prompt):
            yield ("prompt", i) if len(self.prompt) > 1 else ("prompt",), name

    def may_exit(self) -> bool:
        return self.next is None


MODEL = MessageNode


def run(node: MessageNode, ctx: CallContext) -> NodeGen:
    yield Prompt(media=media(node.prompt, ctx), max_digits=0)
    return Continue("next")


# ---------------------------------------------------------------------------------------------
# The editor JSON Schema (`callctl schema`, controller.core.flows.editor_schema): what the
# models alone would not say.

def _prompts_alias(definition: dict[str, Any]) -> None:
    """``prompts`` is the model's other name for ``prompt`` (the generated schema misses it);
    either one is required (the rule)."""
    message = definition["properties"]
    message["prompts"] = {**copy.deepcopy(message["prompt"]), "title": "Prompts",
                          "description": "Same as prompt (give one of them)"}
    definition["required"] = ["type"]


_MESSAGE_NODE_FIELDS: dict[str, Any] = {
    **ep.NODE_COMMON,
    "prompt": ep.prompts("What to play"),
    "next": ep.nullable(ep.node_ref("Where to go after the prompts (none: hang up)")),
}

SCHEMA: dict[str, ep.Definition] = {
    "MessageNode": ep.Definition(
        "Play one or more prompts, then go to next (none: hang up).",
        _MESSAGE_NODE_FIELDS,
        rules={"oneOf": [{"required": ["prompt"]}, {"required": ["prompts"]}]},
        complete=_prompts_alias,
    ),
}
