"""YAML text -> a composed node tree -> plain data, under limits, with every problem placed.

The YAML is *composed* (PyYAML node tree, each node with its position), checked for duplicate
keys (PyYAML would silently keep the last one) and turned into plain data (:class:`Builder`).

* a plain scalar made of digits with a leading ``+`` or ``0`` stays a string (``+15550100``
  would otherwise be the int 15550100 and ``0123`` the octal int 83);
* hostile input is refused before anything is built from it (:class:`FlowInputError` with its
  position and the limit): a document over :data:`MAX_FILE_BYTES`, control characters,
  invalid UTF-8, nesting deeper than :data:`MAX_DEPTH`, more than :data:`MAX_YAML_NODES`
  nodes, more than :data:`MAX_ALIASES` aliases or more than :data:`MAX_ALIAS_NODES` nodes
  built through aliases (an alias bomb).

The YAML events come from libyaml when PyYAML has it (about 7x faster than the pure-Python
scanner and parser); the node tree is composed here either way, under the limits above.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from controller.core.flows.problems import MISSING, FlowInputError, Loc, Problem, format_path
from controller.core.flows.sourcemap import scalar

__all__ = [
    "MAX_ALIASES",
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_YAML_NODES",
    "Builder",
    "check_text",
    "compose",
    "decode",
]

_MERGE_TAG = "tag:yaml.org,2002:merge"

MAX_FILE_BYTES = 1 << 20
"""Bytes of one flow document (a file, or one file of an admin API request)."""
MAX_DEPTH = 64
"""Nesting of mappings and lists (a real flow file needs about 8)."""
MAX_YAML_NODES = 200_000
"""YAML nodes (mappings, lists, values) in one document, aliases not expanded."""
MAX_ALIASES = 1_000
"""Aliases (``*name``, ``<<: *name``) in one document."""
MAX_ALIAS_NODES = 10_000
"""Nodes built through aliases in one document, counted expanded (an alias of a list of
100 values counts 101): the "billion laughs" guard."""


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of ``text[index]``."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


# What YAML allows in a stream (PyYAML's and libyaml's check): tab, line breaks, printable.
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def check_text(text: str, file: str) -> None:
    """Raise FlowInputError for a document over MAX_FILE_BYTES or with a character YAML
    does not allow (NUL and other control characters, lone surrogates)."""
    size = len(text) if len(text) > MAX_FILE_BYTES else len(
        text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise FlowInputError(file, 1, 1, "too_big", f"the document is {size} bytes, over the "
                             f"limit of {MAX_FILE_BYTES} bytes")
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        line, col = _position(text, bad.start())
        ch = ord(bad.group())
        what = "a lone surrogate" if 0xD800 <= ch <= 0xDFFF else "a control character"
        raise FlowInputError(file, line, col, "control_character",
                             f"{what} (U+{ch:04X}) is not allowed in a flow file (tabs and "
                             "line breaks are; write it as \\x.. in a double-quoted string)")


def decode(data: bytes, file: str) -> str:
    """UTF-8 bytes -> text (a leading BOM dropped), or FlowInputError at the first bad byte."""
    if len(data) > MAX_FILE_BYTES:
        raise FlowInputError(file, 1, 1, "too_big", f"the document is {len(data)} bytes, "
                             f"over the limit of {MAX_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        head = data[:e.start]
        line = head.count(b"\n") + 1
        col = len(head[head.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
        raise FlowInputError(file, line, col, "not_utf8", f"not UTF-8: byte "
                             f"0x{data[e.start]:02x} cannot start or continue a character "
                             "(save the file as UTF-8)") from None


_Base: Any
try:  # libyaml's scanner and parser (C), with the composer below (Python, with limits)
    from yaml._yaml import CParser

    class _CBase(Composer, CParser, SafeConstructor, Resolver):
        # (the stubs type CParser's methods differently from the Python Parser's)
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    _Base = _CBase
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _Base = yaml.SafeLoader


class _Loader(_Base):  # type: ignore[misc]  # _Base: one of two bases, chosen at import
    """Keeps ``+1555...`` and ``0123`` as strings (phone numbers, DIDs), and composes under
    the limits (depth, node count, aliases and what they expand to)."""

    def __init__(self, stream: str, file: str = "<flows>") -> None:
        super().__init__(stream)
        self.file = file
        self.depth = 0
        self.nodes = 0
        self.aliases = 0
        self.expanded = 0
        self.sizes: dict[int, int] = {}  # id(collection node) -> its size, aliases expanded

    def _refuse(self, mark: Any, code: str, message: str) -> FlowInputError:
        return FlowInputError(self.file, mark.line + 1, mark.column + 1, code, message)

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        assert event is not None  # compose_node is only called with an event ahead
        mark = event.start_mark
        if isinstance(event, AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise self._refuse(mark, "alias_limit", f"more than the limit of "
                                   f"{MAX_ALIASES} aliases in one document")
            node: Node | None = super().compose_node(parent, index)
            assert node is not None
            self.expanded += self.sizes.get(id(node), 1)  # a recursive alias: 1 (see Builder)
            if self.expanded > MAX_ALIAS_NODES:
                raise self._refuse(mark, "alias_expansion", f"alias *{event.anchor} makes more "
                                   f"than the limit of {MAX_ALIAS_NODES} nodes built through "
                                   "aliases in one document (an alias bomb?)")
            return node
        self.nodes += 1
        if self.nodes > MAX_YAML_NODES:
            raise self._refuse(mark, "too_many_nodes", f"more than the limit of "
                               f"{MAX_YAML_NODES} YAML nodes in one document")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self._refuse(mark, "too_deep", f"nested deeper than the limit of "
                               f"{MAX_DEPTH} levels")
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        assert node is not None
        if isinstance(node, SequenceNode):
            self.sizes[id(node)] = 1 + sum(self.sizes.get(id(v), 1) for v in node.value)
        elif isinstance(node, MappingNode):
            self.sizes[id(node)] = 1 + sum(self.sizes.get(id(k), 1) + self.sizes.get(id(v), 1)
                                           for k, v in node.value)
        return node


_Loader.yaml_implicit_resolvers = {
    k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_KEEP_STR = re.compile(r"^(?:\+[0-9]+|0[0-9]+)$")
for _ch in "+0":
    _Loader.yaml_implicit_resolvers.setdefault(_ch, []).insert(
        0, ("tag:yaml.org,2002:str", _KEEP_STR)
    )


class Builder:
    """Plain data from a composed tree, reporting duplicate keys and bad scalars."""

    def __init__(self, loader: _Loader, file: str, problems: list[Problem]) -> None:
        self.loader = loader
        self.file = file
        self.problems = problems
        self.bad: set[int] = set()  # id() of nodes already reported
        self.open: set[int] = set()  # id() of the collections being built (recursion)

    def error(self, node: Node, path: Loc, message: str, value: Any) -> None:
        self.bad.add(id(node))
        m = node.start_mark
        self.problems.append(
            Problem(self.file, m.line + 1, m.column + 1, format_path(path), value, message)
        )

    def value(self, node: Node, path: Loc, depth: int = 0) -> Any:
        if isinstance(node, ScalarNode):
            try:
                return self.loader.construct_object(node)
            except (yaml.YAMLError, ValueError, TypeError, OverflowError) as e:
                self.error(node, path, f"cannot read this value: {e}", node.value)
                return None
        if id(node) in self.open or depth > MAX_DEPTH:
            self.error(node, path, "a recursive alias: this value contains itself", "...")
            return None
        self.open.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.value(v, (*path, i), depth + 1) for i, v in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self.mapping(node, path, depth)
        finally:
            self.open.discard(id(node))
        return None

    def pairs(self, node: MappingNode, path: Loc) -> list[tuple[str | int, Node, Node]]:
        """Key/value node pairs with merge keys (``<<``) applied and duplicates reported."""
        out: dict[Any, tuple[str | int, Node, Node]] = {}
        merged: list[tuple[Any, Node, Node]] = []
        for k, v in node.value:
            if k.tag == _MERGE_TAG:
                sources = v.value if isinstance(v, SequenceNode) else [v]
                for src in sources:
                    if isinstance(src, MappingNode):
                        merged.extend((mk.value, mk, mv) for mk, mv in src.value
                                      if isinstance(mk, ScalarNode))
                    else:
                        self.error(v, path, "a merge (<<) needs a mapping", scalar(v))
                continue
            if not isinstance(k, ScalarNode):
                self.error(k, path, "keys must be plain values (not lists or mappings)", "...")
                continue
            key = self.value(k, path)
            if isinstance(key, bool) or key is None or not isinstance(key, str | int):
                key = k.value
            if k.value in out:
                first = out[k.value][1].start_mark
                msg = f"duplicate key {k.value!r} (first at line {first.line + 1})"
                self.error(k, (*path, str(k.value)), msg, k.value)
                continue
            out[k.value] = (key, k, v)
        for raw, mk, mv in merged:
            out.setdefault(raw, (raw, mk, mv))
        return list(out.values())

    def mapping(self, node: MappingNode, path: Loc, depth: int) -> dict[Any, Any]:
        return {
            key: self.value(v, (*path, key), depth + 1)
            for key, _k, v in self.pairs(node, path)
        }


def compose(text: str, file: str, problems: list[Problem]) -> tuple[Node | None, _Loader]:
    """The node tree of one document (None when it is refused or not YAML: the problem is
    added). Raises FlowInputError for refused input (see :func:`check_text`, _Loader)."""
    check_text(text, file)
    loader = _Loader(text, file)
    try:
        return loader.get_single_node(), loader
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        if "maximum nesting depth" in str(e.problem):  # libyaml's own limit (1000 levels)
            raise FlowInputError(file, line, col, "too_deep", f"nested deeper than the limit "
                                 f"of {MAX_DEPTH} levels") from None
        msg = " ".join(str(x) for x in (e.context, e.problem) if x) or "invalid YAML"
        problems.append(Problem(file, line, col, "", MISSING, f"YAML syntax error: {msg}"))
    except yaml.reader.ReaderError as e:  # check_text finds these first
        line, col = _position(text, min(max(e.position, 0), len(text)))
        raise FlowInputError(file, line, col, "control_character",
                             f"character not allowed in YAML: {e.reason}") from None
    except yaml.YAMLError as e:
        problems.append(Problem(file, 1, 1, "", MISSING, f"YAML error: {e}"))
    except RecursionError:  # MAX_DEPTH keeps the composer far below Python's limit
        raise FlowInputError(file, 1, 1, "too_deep", "nested too deep") from None
    finally:
        loader.dispose()
    return None, loader

