"""``language`` node: the caller picks a language by key; later prompts use it.

Same key handling as the menu (:func:`controller.core.nodes.menu.collect_choice`). On a valid key
``ctx.language`` is set, so every prompt resolved after it (menus, messages, voicemail
greetings, failover greetings) plays from ``prompts/<language>/`` when the file exists there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, Field, model_validator

from controller.core.flows import editor_parts as ep
from controller.core.model import CallContext, Continue, NodeGen
from controller.core.nodes.base import MODEL_CONFIG, Checker, Language, NodeRef, Path
from controller.core.nodes.menu import (
    CHOICE_FIELDS,
    MAX_OPTIONS,
    ChoiceNode,
    MenuKey,
    collect_choice,
)
from controller.core.patterns import LANGUAGE_RE

__all__ = ["MODEL", "SCHEMA", "LanguageChoice", "LanguageNode", "run"]


class LanguageChoice(BaseModel):
    model_config = MODEL_CONFIG

    language: Language
    next: NodeRef | None = Field(None, description="default: the node's `next`")


def _language_choice(value: Any) -> Any:
    return {"language": value} if isinstance(value, str) else value


class LanguageNode(ChoiceNode):
    """Caller picks a language by key; every prompt after it plays in that language."""

    type: Literal["language"] = "language"
    options: dict[
        MenuKey,
        Annotated[
            LanguageChoice,
            BeforeValidator(_language_choice, json_schema_input_type=Language | LanguageChoice),
        ],
    ] = Field(min_length=1, max_length=MAX_OPTIONS)
    next: NodeRef | None = Field(None, description="where options without their own next go")
    BRANCHES: ClassVar[tuple[str, ...]] = ("next", "no_input", "invalid", "fallback")

    @model_validator(mode="after")
    def _nexts(self) -> LanguageNode:
        if self.next is None:
            missing = [k for k, c in self.options.items() if c.next is None]
            if missing:
                raise ValueError(
                    f"option(s) {', '.join(missing)} have no `next` and the node has no `next`"
                )
        return self

    def targets(self) -> Iterator[tuple[Path, str]]:
        for key, choice in self.options.items():
            if choice.next is not None:
                yield ("options", key, "next"), choice.next
        yield from super().targets()

    def branch(self, key: str) -> str | None:
        if key in self.options:
            return self.options[key].next or self.next
        return super().branch(key)

    def valid_keys(self) -> frozenset[str]:
        return frozenset(self.options)

    def lint_options(self, check: Checker, loc: Path) -> None:
        for key, choice in self.options.items():
            check.check_language_dir((*loc, "options", key), choice.language)


MODEL = LanguageNode


def run(node: LanguageNode, ctx: CallContext) -> NodeGen:
    key = yield from collect_choice(node, ctx, node.valid_keys())
    choice = node.options.get(key)
    if choice is not None:
        ctx.language = choice.language
        ctx.log("language", node=node.id, language=choice.language)
    return Continue(key)


# ---------------------------------------------------------------------------------------------
# The editor JSON Schema (`callctl schema`, controller.core.flows.editor_schema): what the
# models alone would not say.

_LANGUAGE_NODE_FIELDS: dict[str, Any] = {
    **ep.NODE_COMMON, **CHOICE_FIELDS,
    "options": {"description": "Key -> language, or {language, next}; keys 1-9 "
                               "(e.g. {\"1\": en, \"2\": es})",
                "type": "object", "minProperties": 1,
                "propertyNames": {"pattern": "^[1-9]$"},
                "additionalProperties": {"anyOf": [
                    ep.string(LANGUAGE_RE.pattern, "A language (e.g. es)"),
                    {"$ref": f"{ep.REF}LanguageChoice"},
                ]},
                "maxProperties": MAX_OPTIONS},
    "next": ep.nullable(ep.node_ref("Where options without their own next go")),
}

_LANGUAGE_CHOICE_FIELDS: dict[str, Any] = {
    "language": ep.string(LANGUAGE_RE.pattern, "The language (e.g. es)"),
    "next": ep.nullable(ep.node_ref("Where to go (default: the node's next)")),
}

SCHEMA: dict[str, ep.Definition] = {
    "LanguageNode": ep.Definition(
        "The caller picks a language by key; every prompt after it plays in it.",
        _LANGUAGE_NODE_FIELDS,
        rules={"anyOf": [
            ep.present("next"),
            {"properties": {"options": {"additionalProperties": {
                "type": "object", **ep.present("next")}}}},
        ]},
    ),
    "LanguageChoice": ep.Definition(
        "A language option: the language, and where to go after it.",
        _LANGUAGE_CHOICE_FIELDS,
    ),
}
