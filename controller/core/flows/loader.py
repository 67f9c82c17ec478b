"""Load flow files (YAML) into a :class:`FlowSet`, with every problem at ``file:line:col``.

The YAML is *composed* (PyYAML node tree, each node with its position), checked for duplicate
keys (PyYAML would silently keep the last one), turned into plain data, validated with the
pydantic models entry by entry (each user, department, flow and node on its own, so one typo
does not hide the other problems), and linted (:mod:`controller.core.flows.lint`). Pydantic error
locations are mapped back to the YAML nodes they came from. Everything is reported in one run.

YAML gotchas handled here:

* a plain scalar made of digits with a leading ``+`` or ``0`` stays a string (``+15550100``
  would otherwise be the int 15550100 and ``0123`` the octal int 83);
* ``1:`` keys are ints to YAML: the models turn them back into strings.

Hostile input is refused before anything is built from it, with its position and the limit
(a :class:`Problem` whose ``code`` is in :data:`INPUT_CODES`): a document over
:data:`MAX_FILE_BYTES`, control characters, invalid UTF-8, nesting deeper than
:data:`MAX_DEPTH`, more than :data:`MAX_YAML_NODES` nodes, more than :data:`MAX_ALIASES`
aliases or more than :data:`MAX_ALIAS_NODES` nodes built through aliases (an alias bomb), more
than :data:`MAX_FLOW_NODES` flow nodes. Nothing is validated or linted then (the other
problems would only be noise). Loading never raises for what a file contains.

The YAML events come from libyaml when PyYAML has it (about 7x faster than the pure-Python
scanner and parser); the node tree is composed here either way, under the limits above.
"""

from __future__ import annotations

import difflib
import re
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from controller.core.flows.directory import Department, Settings, User
from controller.core.flows.schema import NODE_ADAPTER, Flow, FlowSet, with_id
from controller.core.nodes import NODE_TYPES

__all__ = [
    "INPUT_CODES",
    "MAX_ALIASES",
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_FLOW_NODES",
    "MAX_YAML_NODES",
    "SECTIONS",
    "FlowInputError",
    "LoadResult",
    "Location",
    "Problem",
    "SourceMap",
    "format_path",
    "load",
    "load_text",
    "load_texts",
    "parse_path",
]

SECTIONS = ("settings", "users", "departments", "flows")
_SINGULAR = {"users": "user", "departments": "department", "flows": "flow"}
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
MAX_FLOW_NODES = 10_000
"""Nodes of all flows together in one flow set."""

INPUT_CODES = frozenset({
    "too_big", "not_utf8", "control_character", "too_deep", "too_many_nodes",
    "alias_limit", "alias_expansion", "too_many_flow_nodes",
})
"""``Problem.code`` of input refused before it is read as flows (exit 2, HTTP 400/413)."""
SIZE_CODES = frozenset({"too_big", "too_many_nodes", "too_many_flow_nodes"})
"""The refusals that are about size (HTTP 413)."""
Severity = Literal["error", "warning"]
Loc = tuple[str | int, ...]


class _Missing:
    def __repr__(self) -> str:
        return "missing"

    def __reduce__(self) -> str:
        return "MISSING"  # unpickled as the one MISSING (results come from a worker process)


MISSING: Any = _Missing()
"""``Problem.value`` when the value is absent (a required field)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in the flow files. Lines and columns are 1-based."""

    file: str
    line: int
    col: int
    path: str
    value: Any
    message: str
    severity: Severity = "error"
    code: str = ""
    """Empty for flow problems; one of :data:`INPUT_CODES` for refused input."""

    def __post_init__(self) -> None:
        for name, keep in (("message", 400), ("path", 200)):  # a hostile name can be a
            text = getattr(self, name)                        # megabyte: keep both ends
            if len(text) > keep:
                cut = text[:keep * 3 // 5] + " ... " + text[-keep * 2 // 5:]
                object.__setattr__(self, name, cut)

    def __str__(self) -> str:
        value = repr(self.value)
        if len(value) > 80:
            value = value[:77] + "..."
        kind = "warning: " if self.severity == "warning" else ""
        shown = "" if self.code and self.value is MISSING else f" (value: {value})"
        return (f"{self.file}:{self.line}:{self.col}: {self.path or '(top)'}: {kind}"
                f"{self.message}{shown}")


@dataclass
class LoadResult:
    """``flowset`` is None when there is any error; warnings never block."""

    flowset: FlowSet | None
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    """File name (as given) -> its text, for the published version's record."""
    source_map: SourceMap | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and self.flowset is not None

    @property
    def refused(self) -> list[Problem]:
        """The errors that refused input before it was read as flows (limits, encoding)."""
        return [p for p in self.errors if p.code in INPUT_CODES]

    @property
    def problems(self) -> list[Problem]:
        return sorted([*self.errors, *self.warnings], key=_order(self.source_map))


def _order(smap: SourceMap | None) -> Any:
    files = smap.files if smap else []

    def key(p: Problem) -> tuple[int, str, int, int]:
        return (files.index(p.file) if p.file in files else len(files), p.file, p.line, p.col)

    return key


# ---------------------------------------------------------------------------------------------
# Paths: ("flows", "main", "dids", 1) <-> "flows.main.dids[1]"


def format_path(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(path: str) -> Loc:
    """``"members[2]"`` -> ``("members", 2)`` (for paths from the directory helpers)."""
    return tuple(
        int(idx) if idx else name for name, idx in _PATH_PART.findall(path)
    )


# ---------------------------------------------------------------------------------------------
# Source positions.


@dataclass(frozen=True, slots=True)
class Location:
    file: str
    line: int
    col: int
    path: str
    value: Any


@dataclass(slots=True)
class _Src:
    file: str
    key: Node | None
    value: Node | None


class SourceMap:
    """Where each part of the merged flow set came from."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.roots: dict[str, Node] = {}
        self.entries: dict[tuple[str, str], _Src] = {}
        self.sections: dict[str, _Src] = {}

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
        src: _Src | None = None
        rest: Loc = ()
        prefix: list[str | int] = [section]
        if section in _SINGULAR and len(loc) >= 2 and (section, str(loc[1])) in self.entries:
            src = self.entries[(section, str(loc[1]))]
            prefix.append(str(loc[1]))
            rest = loc[2:]
            if rest in (("id",), ("[key]",)) and src.key is not None:
                path = format_path([*prefix, *rest[:1]] if rest == ("id",) else prefix)
                return self._at(src.file, src.key, path, _scalar(src.key))
        elif section in self.sections:
            src = self.sections[section]
            rest = loc[1:]
        if src is None or src.value is None:
            if src is not None and src.key is not None:
                return self._at(src.file, src.key, format_path(loc), MISSING)
            return self._fallback(format_path(loc))
        node, key_node, parts, found = _walk(src.value, rest, missing=missing)
        path = format_path([*prefix, *parts])
        target = key_node if key_node is not None else node
        return self._at(src.file, target, path, _scalar(node) if found else MISSING)

    def _at(self, file: str, node: Node, path: str, value: Any) -> Location:
        m = node.start_mark
        return Location(file, m.line + 1, m.column + 1, path, value)

    def _fallback(self, path: str) -> Location:
        file = self.files[0] if self.files else "<flows>"
        return Location(file, 1, 1, path, MISSING)


def _walk(
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


def _scalar(node: Node) -> Any:
    if isinstance(node, ScalarNode):
        return node.value
    if isinstance(node, MappingNode):
        return "{...}"
    if isinstance(node, SequenceNode):
        return "[...]"
    return None


# ---------------------------------------------------------------------------------------------
# YAML -> data.


class FlowInputError(ValueError):
    """Input the loader refuses to read as flows (a limit, the encoding, a control
    character), at ``file:line:col``. Loading catches it and reports it as a Problem."""

    def __init__(self, file: str, line: int, col: int, code: str, message: str) -> None:
        super().__init__(f"{file}:{line}:{col}: {message}")
        self.file, self.line, self.col, self.code, self.message = file, line, col, code, message

    def problem(self) -> Problem:
        return Problem(self.file, self.line, self.col, "", MISSING, self.message, code=self.code)


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


try:  # libyaml's scanner and parser (C), with the composer below (Python, with limits)
    from yaml._yaml import CParser as _CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _CParser = None

if _CParser is not None:
    class _Base(Composer, _CParser, SafeConstructor, Resolver):  # type: ignore[misc]
        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
else:  # pragma: no cover
    _Base = yaml.SafeLoader  # type: ignore[assignment,misc]


class _Loader(_Base):  # type: ignore[misc,valid-type]
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
        mark = event.start_mark
        if isinstance(event, AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise self._refuse(mark, "alias_limit", f"more than the limit of "
                                   f"{MAX_ALIASES} aliases in one document")
            node: Node = super().compose_node(parent, index)
            self.expanded += self.sizes.get(id(node), 1)  # a recursive alias: 1 (see _Build)
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


class _Build:
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
                        self.error(v, path, "a merge (<<) needs a mapping", _scalar(v))
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


def _compose(text: str, file: str, problems: list[Problem]) -> tuple[Node | None, _Loader]:
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


# ---------------------------------------------------------------------------------------------
# Pydantic errors -> problems.

_PREFIXES = ("Value error, ", "Assertion failed, ")


def _field_names() -> list[str]:
    names: set[str] = set()
    models: list[type[BaseModel]] = [
        FlowSet, Flow, Settings, User, Department, *NODE_TYPES.values()
    ]
    seen: set[type[BaseModel]] = set()
    while models:
        m = models.pop()
        if m in seen:
            continue
        seen.add(m)
        for name, info in m.model_fields.items():
            names.add(info.alias or name)
            for arg in _model_args(info.annotation):
                models.append(arg)
    return sorted(names)


def _model_args(annotation: Any) -> Iterable[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        yield from _model_args(arg)
    for meta in getattr(annotation, "__metadata__", ()) or ():
        yield from _model_args(meta)


_FIELDS: list[str] = []


def _short(name: Any) -> str:
    """``repr(name)``, cut to 60 characters (a hostile key can be a megabyte)."""
    text = repr(name)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    loc = err.get("loc", ())
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        if not _FIELDS:
            _FIELDS.extend(_field_names())
        close = difflib.get_close_matches(name, _FIELDS, n=1) if len(name) <= 64 else []
        return f"unknown field {_short(name)}" + (
            f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "union_tag_invalid":
        tag = (err.get("ctx") or {}).get("tag", "?")
        close = difflib.get_close_matches(str(tag), NODE_TYPES, n=1)
        return (f"unknown node type {tag!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                + f": use one of {', '.join(NODE_TYPES)}")
    if kind == "union_tag_not_found":
        return f"a node needs a `type`: one of {', '.join(NODE_TYPES)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "expected a mapping (key: value lines)"
    if kind == "list_type":
        return "expected a list"
    msg = str(err.get("msg", "invalid value"))
    for p in _PREFIXES:
        if msg.startswith(p):
            msg = msg[len(p):]
    return msg


def _validate(build: Any, smap: SourceMap, prefix: Loc, problems: list[Problem]) -> Any:
    """Run ``build()``; turn a ValidationError/ValueError into problems. None if invalid."""
    try:
        return build()
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = (*prefix, *err["loc"])
            missing = err["type"] == "missing"
            if err["type"] == "union_tag_invalid":
                loc = (*loc, "type")
            elif err["type"] == "extra_forbidden":
                loc = (*loc, "[key]")
            where = smap.locate(loc, missing=missing)
            value = MISSING if missing else err.get("input", where.value)
            if err["type"] == "union_tag_invalid":
                value = (err.get("ctx") or {}).get("tag", value)
            elif isinstance(value, dict | list):
                value = where.value
            problems.append(Problem(where.file, where.line, where.col, where.path, value,
                                    _message(err)))
    except ValueError as exc:
        where = smap.locate((*prefix, "id"))
        problems.append(Problem(where.file, where.line, where.col, where.path, where.value,
                                str(exc)))
    return None


# ---------------------------------------------------------------------------------------------
# Public entry points.


def _files(paths: Iterable[str | Path], problems: list[Problem]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml") and q.is_file())
            if not found:
                problems.append(Problem(str(p), 1, 1, "", MISSING, "no *.yaml files here"))
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            problems.append(Problem(str(p), 1, 1, "", MISSING, "no such file or directory"))
    return list(dict.fromkeys(out))


def load(paths: Iterable[str | Path]) -> LoadResult:
    """Load, validate and lint flow files and directories (their ``*.yaml``/``*.yml``)."""
    problems: list[Problem] = []
    texts: dict[str, str] = {}
    for f in _files(paths, problems):
        try:
            with f.open("rb") as fh:  # never more than the limit into memory
                texts[str(f)] = decode(fh.read(MAX_FILE_BYTES + 1), str(f))
        except FlowInputError as e:
            problems.append(e.problem())
        except OSError as e:
            problems.append(Problem(str(f), 1, 1, "", MISSING, f"cannot read: {e}"))
    return _load_texts(texts, problems)


def load_text(text: str, name: str = "<flows>") -> LoadResult:
    """Load one flow document from a string (tests, tools)."""
    return _load_texts({name: text}, [])


def load_texts(texts: dict[str, str]) -> LoadResult:
    """Load several flow documents given as ``{file name: text}`` (the admin API)."""
    return _load_texts(dict(texts), [])


def _load_texts(texts: dict[str, str], problems: list[Problem]) -> LoadResult:
    from controller.core.flows.lint import lint  # lint imports this module

    smap = SourceMap()
    data: dict[str, Any] = {"settings": None, "users": {}, "departments": {}, "flows": {}}
    bad: set[int] = set()
    for file, text in texts.items():
        smap.files.append(file)
        try:
            root, loader = _compose(text, file, problems)
        except FlowInputError as e:
            problems.append(e.problem())
            continue
        if root is None:
            continue
        smap.roots[file] = root
        build = _Build(loader, file, problems)
        if not isinstance(root, MappingNode):
            build.error(root, (), "a flow file is a mapping with settings, users, departments "
                        "and flows", _scalar(root))
            continue
        for section, k, v in build.pairs(root, ()):
            if section not in SECTIONS:
                close = difflib.get_close_matches(str(section)[:64], SECTIONS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                build.error(k, (section,), f"unknown top-level key {_short(section)}{hint}: use "
                            f"{', '.join(SECTIONS)}", section)
                continue
            if section == "settings":
                if "settings" in smap.sections:
                    build.error(k, (section,), "settings are given twice (also at "
                                f"{smap.where('settings')})", section)
                    continue
                smap.sections["settings"] = _Src(file, k, v)
                data["settings"] = build.value(v, ("settings",))
                continue
            smap.sections.setdefault(str(section), _Src(file, k, v))
            if isinstance(v, ScalarNode) and v.tag == "tag:yaml.org,2002:null":
                continue
            if not isinstance(v, MappingNode):
                build.error(v, (section,), f"{section} is a mapping of id: {{...}}", _scalar(v))
                continue
            for key, ek, ev in build.pairs(v, (section,)):
                eid = str(key)
                if (section, eid) in smap.entries:
                    build.error(ek, (section, eid), f"duplicate {_SINGULAR[str(section)]} id "
                                f"{eid!r} (also declared at {smap.where(str(section), eid)})",
                                eid)
                    continue
                smap.entries[(str(section), eid)] = _Src(file, ek, ev)
                data[section][eid] = build.value(ev, (section, eid))
        bad |= build.bad
    _check_flow_nodes(data["flows"], smap, problems)
    if any(p.code in INPUT_CODES for p in problems):  # refused: the rest would be noise
        problems.sort(key=_order(smap))
        return LoadResult(flowset=None, errors=[p for p in problems if p.severity == "error"],
                          warnings=[], sources=texts, source_map=smap)

    schema_problems: list[Problem] = []
    broken: set[tuple[str, ...]] = set()

    def check(build: Any, prefix: Loc) -> Any:
        before = len(schema_problems)
        result = _validate(build, smap, prefix, schema_problems)
        if result is None or len(schema_problems) > before:
            broken.add(tuple(str(p) for p in prefix))
        return result

    settings = check(lambda: Settings.model_validate(data["settings"] or {}), ("settings",))
    users = {
        uid: u for uid, body in data["users"].items()
        if (u := check(lambda b=body, i=uid: User.model_validate(with_id(i, b)),
                       ("users", uid))) is not None
    }
    departments = {
        did: d for did, body in data["departments"].items()
        if (d := check(lambda b=body, i=did: Department.model_validate(with_id(i, b)),
                       ("departments", did))) is not None
    }
    flows: dict[str, Flow] = {}
    salvaged: dict[tuple[str, str], Any] = {}
    for fid, body in data["flows"].items():
        body = {} if body is None else body
        if not isinstance(body, dict):
            check(lambda b=body: Flow.model_validate(b), ("flows", fid))
            continue
        raw_nodes = body.get("nodes")
        flow = check(
            lambda b=body, i=fid: Flow.model_validate({**with_id(i, b), "nodes": {}}),
            ("flows", fid),
        )
        nodes: dict[str, Any] = {}
        if raw_nodes is None:
            pass
        elif not isinstance(raw_nodes, dict):
            where = smap.locate(("flows", fid, "nodes"))
            schema_problems.append(Problem(where.file, where.line, where.col, where.path,
                                           where.value, "nodes is a mapping of id: {...}"))
            broken.add(("flows", fid))
        else:
            for nid, nbody in raw_nodes.items():
                node = check(
                    lambda b=nbody, i=str(nid): NODE_ADAPTER.validate_python(with_id(i, b)),
                    ("flows", fid, "nodes", str(nid)),
                )
                if node is not None:
                    nodes[str(nid)] = node
                elif (part := _salvage_node(str(nid), nbody)) is not None:
                    salvaged[(fid, str(nid))] = part
        if flow is not None:
            flows[fid] = flow.model_copy(update={"nodes": nodes})

    # Drop problems on YAML nodes already reported while reading them.
    schema_problems = [p for p in schema_problems if not _on_bad(p, smap, bad)]
    partial = FlowSet(
        settings=settings or Settings(), users=users, departments=departments, flows=flows
    )
    lint_problems = lint(partial, smap, broken=frozenset(broken), salvaged=salvaged)
    all_problems = [*problems, *schema_problems, *lint_problems]
    errors = [p for p in all_problems if p.severity == "error"]
    warnings = [p for p in all_problems if p.severity == "warning"]
    key = _order(smap)
    errors.sort(key=key)
    warnings.sort(key=key)
    return LoadResult(
        flowset=None if errors else partial,
        errors=errors,
        warnings=warnings,
        sources=texts,
        source_map=smap,
    )


def _check_flow_nodes(flows: dict[str, Any], smap: SourceMap, problems: list[Problem]) -> None:
    """Refuse a flow set with more than MAX_FLOW_NODES nodes (at the flow that crosses it)."""
    total = 0
    for fid, body in flows.items():
        nodes = body.get("nodes") if isinstance(body, dict) else None
        total += len(nodes) if isinstance(nodes, dict) else 0
        if total > MAX_FLOW_NODES:
            where = smap.locate(("flows", fid, "nodes"))
            problems.append(Problem(
                where.file, where.line, where.col, where.path, MISSING,
                f"more than the limit of {MAX_FLOW_NODES} flow nodes in the flow set",
                code="too_many_flow_nodes"))
            return


def _salvage_node(nid: str, body: Any) -> Any:
    """A schema-broken node without its bad fields (None if that still does not validate):
    lint checks its remaining references, so every error shows in one run."""
    if not isinstance(body, dict):
        return None
    trial = with_id(nid, body)
    for _ in range(4):
        try:
            return NODE_ADAPTER.validate_python(trial)
        except ValidationError as exc:
            bad: set[str] = set()
            for err in exc.errors():
                loc = list(err["loc"])
                if loc and loc[0] == trial.get("type"):  # the discriminated union's tag
                    loc = loc[1:]
                if not loc or loc[0] in ("type", "id") or loc[0] not in trial:
                    return None  # no type, or a required field is missing: nothing to salvage
                bad.add(str(loc[0]))
            trial = {k: v for k, v in trial.items() if k not in bad}
    return None


def _on_bad(p: Problem, smap: SourceMap, bad: set[int]) -> bool:
    if not bad:
        return False
    loc = parse_path(p.path)
    for section, eid in smap.entries:
        if loc[:2] != (section, eid):
            continue
        src = smap.entries[(section, eid)]
        if src.value is None:
            return False
        node, key_node, _parts, _found = _walk(src.value, loc[2:], missing=False)
        return id(node) in bad or (key_node is not None and id(key_node) in bad)
    return False
