"""Building blocks of the editor JSON Schema (``callctl schema``).

:mod:`controller.core.flows.editor_schema` makes the schema from the pydantic models and
completes each definition with a :class:`Definition`: the directory's there, each node
type's in its own module (``SCHEMA`` in ``controller/core/nodes/<type>.py``). The helpers
return a fresh dict on every call: the schema is a tree, not a graph.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.core.patterns import ID_RE, MAX_PROMPT_NAME, PROMPT_NAME_RE

__all__ = [
    "NODE_COMMON",
    "REF",
    "TIMEZONE_PATTERN",
    "Definition",
    "absent",
    "an_id",
    "boolean",
    "node_ref",
    "nullable",
    "present",
    "prompt",
    "prompts",
    "seconds",
    "string",
]

REF = "#/definitions/"
TIMEZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)*$"


@dataclass(frozen=True)
class Definition:
    """What a model says about itself and its fields in the schema.

    ``fields``: field -> schema. A schema replaces the generated one (keeping its title and
    default); a plain string only sets the description. Every field has an entry (a test
    checks). ``rules`` are added to the definition (``anyOf`` and the like: rules on several
    fields); ``complete`` edits the finished definition (keys the model takes that its
    generated schema misses)."""

    description: str
    fields: Mapping[str, str | dict[str, Any]]
    rules: Mapping[str, Any] = field(default_factory=dict)
    complete: Callable[[dict[str, Any]], None] | None = None


def string(pattern: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "pattern": pattern, "description": description, **extra}


def an_id(what: str, example: str) -> dict[str, Any]:
    return string(ID_RE.pattern, f"{what}: lower-case letters, digits, '_' and '-', starting "
                  f"with a letter or digit (e.g. {example})")


def node_ref(what: str = "A node id in this flow") -> dict[str, Any]:
    return string(ID_RE.pattern, what)


def prompt(what: str = "A prompt name") -> dict[str, Any]:
    return string(PROMPT_NAME_RE.pattern, f"{what}: a file in prompts_dir/<language>/ or an "
                  "Asterisk sound, without extension (e.g. welcome, sales/intro)",
                  maxLength=MAX_PROMPT_NAME)


def prompts(what: str) -> dict[str, Any]:
    one = prompt()
    return {
        "description": f"{what}: a prompt name or a list of them, played in order "
                       "(e.g. welcome or [welcome, main-menu])",
        "anyOf": [one, {"type": "array", "items": copy.deepcopy(one), "minItems": 1}],
    }


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    desc = schema.pop("description", None)
    out: dict[str, Any] = {"anyOf": [schema, {"type": "null"}]}
    if desc:
        out["description"] = desc
    return out


def boolean(description: str) -> dict[str, Any]:
    return {"type": "boolean", "description": description}


def seconds(description: str, maximum: float) -> dict[str, Any]:
    return {"type": "number", "exclusiveMinimum": 0, "maximum": maximum,
            "description": description}


def present(name: str) -> dict[str, Any]:
    """A field given and not null."""
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


def absent(*names: str) -> dict[str, Any]:
    """Fields absent or null."""
    return {"properties": {n: {"type": "null"} for n in names}}


NODE_COMMON: dict[str, Any] = {
    "id": an_id("The node id (its key in nodes; optional here)", "main-menu"),
    "description": "A note for people reading the flow.",
    "type": "The node type.",
}
"""The fields every node has."""
