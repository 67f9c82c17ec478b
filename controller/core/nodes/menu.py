"""``menu`` node: play a prompt, collect one key, branch on it.

Keys 1-9 lead to ``options``, 0 to ``operator``, ``repeat_key`` (default ``*``) replays the
prompt. Barge-in: a key pressed during the prompt counts. No key within ``timeout`` seconds, or
a wrong key (after ``invalid_prompt``), replays the prompt; after ``1 + retries`` plays without
a valid key the menu ends with ``no_input`` or ``invalid`` (whichever the last try was), each
falling back to ``fallback`` and then to a hangup (see ``MenuNode.branch``).
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from controller.core.flows import editor_parts as ep
from controller.core.model import CallContext, Command, Continue, Digits, NodeGen, Prompt
from controller.core.nodes.base import (
    Checker,
    NodeBase,
    NodeRef,
    Path,
    PromptName,
    Prompts,
    Seconds,
)
from controller.core.patterns import KEYPAD_KEYS, MENU_KEYS
from controller.core.prompts import media, resolve_prompt

__all__ = [
    "CHOICE_FIELDS",
    "MAX_OPTIONS",
    "MAX_REPEATS",
    "MODEL",
    "SCHEMA",
    "ChoiceNode",
    "MenuKey",
    "MenuNode",
    "collect_choice",
    "run",
]

MAX_REPEATS = 10
"""Replays on ``repeat_key`` per visit; more presses count as wrong keys."""
MAX_OPTIONS = len(MENU_KEYS)
"""Options of one menu level (keys 1-9: :data:`~controller.core.patterns.MENU_KEYS`)."""


def _key_str(value: Any) -> Any:
    """YAML reads ``1:`` as an int key; keys are strings."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _check_menu_key(key: str) -> str:
    if key in MENU_KEYS:
        return key
    if key == "0":
        raise ValueError("key 0 is reserved for the operator: use `operator:`")
    if key in ("*", "#"):
        raise ValueError(f"key {key!r} is reserved (repeat/confirm): use keys 1-9")
    raise ValueError(f"menu keys are single digits 1-9, not {key!r} (use a sub-menu for more)")


MenuKey = Annotated[
    str, BeforeValidator(_key_str, json_schema_input_type=str), AfterValidator(_check_menu_key)
]


class ChoiceNode(NodeBase):
    """Shared by menu and language: play a prompt, collect one key, retry."""

    prompt: Prompts
    timeout: Seconds = Field(5.0, description="seconds to wait for a key after the prompt")
    retries: int = Field(3, ge=0, le=10, description="replays after no/invalid input")
    repeat_key: Literal["*", "#"] | None = Field("*", description="replays the prompt")
    invalid_prompt: PromptName = Field("invalid", description="played before a replay")
    no_input: NodeRef | None = None
    invalid: NodeRef | None = None
    fallback: NodeRef | None = None

    def branch(self, key: str) -> str | None:
        if key in ("no_input", "invalid"):
            return getattr(self, key) or self.fallback
        if key == "fallback":
            return self.fallback
        return None

    def prompts(self) -> Iterator[tuple[Path, str]]:
        for i, name in enumerate(self.prompt):
            yield ("prompt", i) if len(self.prompt) > 1 else ("prompt",), name
        yield ("invalid_prompt",), self.invalid_prompt

    if TYPE_CHECKING:  # each choice node declares its own
        options: Mapping[str, Any]

    def lint(self, check: Checker, fid: str, loc: Path) -> None:
        if len(self.options) > MAX_OPTIONS:
            check.add((*loc, "options"), f"{len(self.options)} options: a menu level has at "
                      f"most {MAX_OPTIONS} (keys 1-9); use a sub-menu", len(self.options))
        self.lint_options(check, loc)
        if self.fallback is None:
            missing = [b for b in ("no_input", "invalid") if getattr(self, b) is None]
            if missing:
                what = " or ".join({"no_input": "no key", "invalid": "a wrong key"}[m]
                                   for m in missing)
                check.warn((*loc, "[key]"), f"after {self.retries + 1} tries with {what} the "
                           f"call is hung up: set {' and '.join(missing)}, or fallback",
                           loc[-1])

    def lint_options(self, check: Checker, loc: Path) -> None:
        """Checks of the options beyond their number."""

    def may_exit(self) -> bool:
        return self.branch("no_input") is None or self.branch("invalid") is None


class MenuNode(ChoiceNode):
    """IVR menu: keys 1-9 lead to nodes, 0 to the operator, ``repeat_key`` replays."""

    type: Literal["menu"] = "menu"
    options: dict[MenuKey, NodeRef] = Field(default_factory=dict, max_length=MAX_OPTIONS)
    operator: NodeRef | None = Field(None, description="where key 0 leads")
    BRANCHES: ClassVar[tuple[str, ...]] = ("operator", "no_input", "invalid", "fallback")

    @model_validator(mode="after")
    def _has_choice(self) -> MenuNode:
        if not self.options and self.operator is None:
            raise ValueError("a menu needs at least one option (keys 1-9) or an operator")
        return self

    def targets(self) -> Iterator[tuple[Path, str]]:
        for key, target in self.options.items():
            yield ("options", key), target
        yield from super().targets()

    def branch(self, key: str) -> str | None:
        if key in self.options:
            return self.options[key]
        if key == "0":
            return self.operator
        return super().branch(key)

    def valid_keys(self) -> frozenset[str]:
        return frozenset(self.options) | ({"0"} if self.operator else frozenset())


MODEL = MenuNode


def collect_choice(
    node: ChoiceNode, ctx: CallContext, valid: Collection[str]
) -> Generator[Command, Any, str]:
    """Prompt until a key in ``valid`` is pressed; return it, or ``no_input``/``invalid``
    when the tries are used up."""
    prompt = media(node.prompt, ctx)
    play = prompt
    failures = repeats = 0
    while True:
        res = yield Prompt(media=play, max_digits=1, timeout=node.timeout, barge_in=True)
        key = res.digits[:1] if isinstance(res, Digits) else ""
        if key and key not in KEYPAD_KEYS:
            key = "?"
        if key and key in valid:
            ctx.log("digits", node=node.id, digits=key)
            return key
        if key and key == node.repeat_key and repeats < MAX_REPEATS:
            repeats += 1
            ctx.log("digits", node=node.id, digits=key, result="repeat")
            play = prompt
            continue
        failures += 1
        outcome = "invalid" if key else "no_input"
        ctx.log("digits", node=node.id, digits=key, result=outcome, attempt=failures)
        if failures > node.retries:
            return outcome
        if outcome == "invalid":
            play = (resolve_prompt(node.invalid_prompt, ctx), *prompt)
        else:
            play = prompt


def run(node: MenuNode, ctx: CallContext) -> NodeGen:
    key = yield from collect_choice(node, ctx, node.valid_keys())
    return Continue(key)


# ---------------------------------------------------------------------------------------------
# The editor JSON Schema (`callctl schema`, controller.core.flows.editor_schema): what the
# models alone would not say.

CHOICE_FIELDS: dict[str, Any] = {
    "prompt": ep.prompts("What to play before waiting for a key"),
    "timeout": ep.seconds("Seconds to wait for a key after the prompt (e.g. 5)", 60),
    "retries": "Replays after no key or a wrong key (0-10).",
    "repeat_key": "The key that replays the prompt, or null for none.",
    "invalid_prompt": ep.prompt("Played before a replay"),
    "no_input": ep.nullable(ep.node_ref("Where to go when no key was pressed after every try "
                                        "(default: fallback)")),
    "invalid": ep.nullable(ep.node_ref("Where to go after a wrong key on every try "
                                       "(default: fallback)")),
    "fallback": ep.nullable(ep.node_ref("Where to go when no_input or invalid is not set "
                                        "(none: hang up)")),
}

_MENU_NODE_FIELDS: dict[str, Any] = {
    **ep.NODE_COMMON, **CHOICE_FIELDS,
    "options": {"description": "Key -> node id, keys 1-9 (e.g. {\"1\": sales})",
                "type": "object",
                "propertyNames": {"pattern": "^[1-9]$"},
                "additionalProperties": ep.node_ref(),
                "maxProperties": MAX_OPTIONS},
    "operator": ep.nullable(ep.node_ref("Where key 0 leads")),
}

SCHEMA: dict[str, ep.Definition] = {
    "MenuNode": ep.Definition(
        "IVR menu: keys 1-9 lead to nodes, 0 to the operator, repeat_key replays.",
        _MENU_NODE_FIELDS,
        rules={"anyOf": [
            {"required": ["options"], "properties": {"options": {"minProperties": 1}}},
            ep.present("operator"),
        ]},
    ),
}
