"""Load flow files (YAML) into a :class:`FlowSet`, with every problem at ``file:line:col``.

The YAML is *composed* (PyYAML node tree, each node with its position), checked for duplicate
keys (PyYAML would silently keep the last one), turned into plain data, validated with the
pydantic models entry by entry (each user, department, flow and node on its own, so one typo
does not hide the other problems), and linted (:mod:`controller.flows.lint`). Pydantic error
locations are mapped back to the YAML nodes they came from. Everything is reported in one run.

YAML gotchas handled here:

* a plain scalar made of digits with a leading ``+`` or ``0`` stays a string (``+15550100``
  would otherwise be the int 15550100 and ``0123`` the octal int 83);
* ``1:`` keys are ints to YAML: the models turn them back into strings.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from controller.flows.directory import Department, Settings, User
from controller.flows.schema import NODE_ADAPTER, NODE_TYPES, Flow, FlowSet, with_id

__all__ = [
    "SECTIONS",
    "LoadResult",
    "Location",
    "Problem",
    "SourceMap",
    "format_path",
    "load",
    "load_text",
    "parse_path",
]

SECTIONS = ("settings", "users", "departments", "flows")
_SINGULAR = {"users": "user", "departments": "department", "flows": "flow"}
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_DEPTH = 64
Severity = Literal["error", "warning"]
Loc = tuple[str | int, ...]


class _Missing:
    def __repr__(self) -> str:
        return "missing"


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

    def __str__(self) -> str:
        value = repr(self.value)
        if len(value) > 80:
            value = value[:77] + "..."
        kind = "warning: " if self.severity == "warning" else ""
        return (f"{self.file}:{self.line}:{self.col}: {self.path or '(top)'}: {kind}"
                f"{self.message} (value: {value})")


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


def _find_key(node: MappingNode, key: str) -> tuple[Node, Node] | None:
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


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps ``+1555...`` and ``0123`` as strings (phone numbers, DIDs)."""


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

    def error(self, node: Node, path: Loc, message: str, value: Any) -> None:
        self.bad.add(id(node))
        m = node.start_mark
        self.problems.append(
            Problem(self.file, m.line + 1, m.column + 1, format_path(path), value, message)
        )

    def value(self, node: Node, path: Loc, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            self.error(node, path, "nesting too deep (a recursive alias?)", "...")
            return None
        if isinstance(node, ScalarNode):
            try:
                return self.loader.construct_object(node)
            except (yaml.YAMLError, ValueError, TypeError, OverflowError) as e:
                self.error(node, path, f"cannot read this value: {e}", node.value)
                return None
        if isinstance(node, SequenceNode):
            return [self.value(v, (*path, i), depth + 1) for i, v in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return self.mapping(node, path, depth)
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
    loader = _Loader(text)
    try:
        return loader.get_single_node(), loader
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = " ".join(str(x) for x in (e.context, e.problem) if x) or "invalid YAML"
        problems.append(Problem(file, line, col, "", MISSING, f"YAML syntax error: {msg}"))
    except yaml.YAMLError as e:
        problems.append(Problem(file, 1, 1, "", MISSING, f"YAML error: {e}"))
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


def _message(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    loc = err.get("loc", ())
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        if not _FIELDS:
            _FIELDS.extend(_field_names())
        close = difflib.get_close_matches(name, _FIELDS, n=1)
        return f"unknown field {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
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
            texts[str(f)] = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            problems.append(Problem(str(f), 1, 1, "", MISSING, f"cannot read: {e}"))
    return _load_texts(texts, problems)


def load_text(text: str, name: str = "<flows>") -> LoadResult:
    """Load one flow document from a string (tests, tools)."""
    return _load_texts({name: text}, [])


def load_texts(texts: dict[str, str]) -> LoadResult:
    """Load several flow documents given as ``{file name: text}`` (the admin API)."""
    return _load_texts(dict(texts), [])


def _load_texts(texts: dict[str, str], problems: list[Problem]) -> LoadResult:
    from controller.flows.lint import lint  # lint imports this module

    smap = SourceMap()
    data: dict[str, Any] = {"settings": None, "users": {}, "departments": {}, "flows": {}}
    bad: set[int] = set()
    for file, text in texts.items():
        smap.files.append(file)
        root, loader = _compose(text, file, problems)
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
                close = difflib.get_close_matches(str(section), SECTIONS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                build.error(k, (section,), f"unknown top-level key {section!r}{hint}: use "
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
