"""Where each part of a merged flow set came from: file, line and column of its YAML node.

The loader (:mod:`controller.core.flows.loader`) records, for every section and entry, the
file and the composed YAML nodes of its key and value; :meth:`SourceMap.locate` follows a
path (a pydantic error location, a lint path) down those nodes.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from controller.core.flows.problems import MISSING, Loc, Location, format_path

__all__ = ["SINGULAR", "SourceMap", "Src", "scalar", "walk"]

SINGULAR = {"users": "user", "departments": "department", "flows": "flow"}


@dataclass(slots=True)
class Src:
    file: str
    key: Node | None
    value: Node | None


class SourceMap:
    """Where each part of the merged flow set came from."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.roots: dict[str, Node] = {}
        self.entries: dict[tuple[str, str], Src] = {}
        self.sections: dict[str, Src] = {}

    def where(self, section: str, entry: str | None = None) -> str:
        """``file:line:col`` of a section or entry key, for "also declared at" messages."""
        src = self.entries.get((section, entry)) if entry else self.sections.get(section)
        if src is None or src.key is None:
            return "?"
        m = src.key.start_mark
        return f"{src.file}:{m.line + 1}:{m.column + 1}"

    def locate(self, loc: Sequence[str | int], *, missing: bool = False) -> Location:
        """The position of ``loc`` (union tags and other model-only parts are skipped). With
        ``missing`` the last part names an absent field: its parent mapping is pointed at."""
        loc = tuple(loc)
        if not loc:
            return self._fallback("")
        section = str(loc[0])
        src: Src | None = None
        rest: Loc = ()
        prefix: list[str | int] = [section]
        if section in SINGULAR and len(loc) >= 2 and (section, str(loc[1])) in self.entries:
            src = self.entries[(section, str(loc[1]))]
            prefix.append(str(loc[1]))
            rest = loc[2:]
            if rest in (("id",), ("[key]",)) and src.key is not None:
                path = format_path([*prefix, *rest[:1]] if rest == ("id",) else prefix)
                return self._at(src.file, src.key, path, scalar(src.key))
        elif section in self.sections:
            src = self.sections[section]
            rest = loc[1:]
        if src is None or src.value is None:
            if src is not None and src.key is not None:
                return self._at(src.file, src.key, format_path(loc), MISSING)
            return self._fallback(format_path(loc))
        node, key_node, parts, found = walk(src.value, rest, missing=missing)
        path = format_path([*prefix, *parts])
        target = key_node if key_node is not None else node
        return self._at(src.file, target, path, scalar(node) if found else MISSING)

    def _at(self, file: str, node: Node, path: str, value: Any) -> Location:
        m = node.start_mark
        return Location(file, m.line + 1, m.column + 1, path, value)

    def _fallback(self, path: str) -> Location:
        file = self.files[0] if self.files else "<flows>"
        return Location(file, 1, 1, path, MISSING)


def walk(
    node: Node, parts: Loc, *, missing: bool
) -> tuple[Node, Node | None, list[str | int], bool]:
    """Follow ``parts`` from ``node``. Returns (node, key node to point at, matched parts,
    whether the value exists)."""
    matched: list[str | int] = []
    last_key: Node | None = None
    point_key: Node | None = None
    for i, part in enumerate(parts):
        if part == "[key]":
            point_key = last_key
            continue
        if isinstance(node, MappingNode):
            hit = _find_key(node, str(part))
            if hit is not None:
                last_key, node = hit
                matched.append(str(part))
                continue
        elif isinstance(node, SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                node = node.value[part]
                matched.append(part)
                last_key = None
                continue
        if missing and i == len(parts) - 1:
            matched.append(part)
            return node, None, matched, False
        # a union tag, a validator name, ...: not in the YAML
    return node, point_key, matched, True


_KEYS: weakref.WeakKeyDictionary[MappingNode, dict[str, tuple[Node, Node]]] = (
    weakref.WeakKeyDictionary())
"""Big mappings' keys, indexed once (a flow's thousands of nodes are looked up per problem)."""


def _find_key(node: MappingNode, key: str) -> tuple[Node, Node] | None:
    if len(node.value) > 16:
        index = _KEYS.get(node)
        if index is None:  # the last one wins, as in the data
            index = _KEYS[node] = {k.value: (k, v) for k, v in node.value
                                   if isinstance(k, ScalarNode)}
        return index.get(key)
    found = None
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.value == key:
            found = (k, v)  # the last one wins, as in the data
    return found


def scalar(node: Node) -> Any:
    if isinstance(node, ScalarNode):
        return node.value
    if isinstance(node, MappingNode):
        return "{...}"
    if isinstance(node, SequenceNode):
        return "[...]"
    return None

