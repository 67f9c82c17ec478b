"""Load flow files (YAML) into a :class:`FlowSet`, with every problem at ``file:line:col``.

Each document is composed under limits and turned into plain data
(:mod:`controller.core.flows.yamlsafe`: duplicate keys, ``+1555...`` kept a string, alias
bombs), with a source map of where each entry came from (:mod:`.sourcemap`). The sections
are merged, validated with the pydantic models entry by entry (each user, department, flow
and node on its own, so one typo does not hide the other problems; errors mapped back to
their YAML nodes: :mod:`.errors`), and linted (:mod:`controller.core.flows.lint`).
Everything is reported in one run (:class:`~controller.core.flows.problems.Problem`).

Hostile input is refused before anything is built from it, with its position and the limit
(a :class:`Problem` whose ``code`` is in :data:`INPUT_CODES`): the limits of one document
(:mod:`.yamlsafe`), and more than :data:`MAX_FLOW_NODES` flow nodes in the flow set. Nothing
is validated or linted then (the other problems would only be noise). Loading never raises
for what a file contains.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from yaml.nodes import MappingNode, ScalarNode

from controller.core.flows.departments import Department
from controller.core.flows.directory import User
from controller.core.flows.errors import short, validate
from controller.core.flows.lint import lint
from controller.core.flows.problems import (
    INPUT_CODES,
    MISSING,
    SIZE_CODES,
    FlowInputError,
    Loc,
    Problem,
    parse_path,
)
from controller.core.flows.schema import NODE_ADAPTER, Flow, FlowSet, with_id
from controller.core.flows.settings import Settings
from controller.core.flows.sourcemap import SINGULAR, SourceMap, Src, scalar, walk
from controller.core.flows.yamlsafe import MAX_FILE_BYTES, Builder, compose, decode

__all__ = [
    "INPUT_CODES",
    "MAX_FLOW_NODES",
    "MISSING",
    "SECTIONS",
    "SIZE_CODES",
    "FlowInputError",
    "LoadResult",
    "Problem",
    "SourceMap",
    "decode",
    "load",
    "load_text",
    "load_texts",
]
"""The loader's API. The types a load returns (Problem, MISSING, the codes, SourceMap) and
the pre-check of a request's bytes (decode, FlowInputError) are re-exported from the modules
that define them (:mod:`.problems`, :mod:`.sourcemap`, :mod:`.yamlsafe`), so a caller of the
loader needs this module only."""

SECTIONS = ("settings", "users", "departments", "flows")
MAX_FLOW_NODES = 10_000
"""Nodes of all flows together in one flow set."""


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
    smap = SourceMap()
    data: dict[str, Any] = {"settings": None, "users": {}, "departments": {}, "flows": {}}
    bad: set[int] = set()
    for file, text in texts.items():
        smap.files.append(file)
        try:
            root, loader = compose(text, file, problems)
        except FlowInputError as e:
            problems.append(e.problem())
            continue
        if root is None:
            continue
        smap.roots[file] = root
        build = Builder(loader, file, problems)
        if not isinstance(root, MappingNode):
            build.error(root, (), "a flow file is a mapping with settings, users, departments "
                        "and flows", scalar(root))
            continue
        for section, k, v in build.pairs(root, ()):
            if section not in SECTIONS:
                close = difflib.get_close_matches(str(section)[:64], SECTIONS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                build.error(k, (section,), f"unknown top-level key {short(section)}{hint}: use "
                            f"{', '.join(SECTIONS)}", section)
                continue
            if section == "settings":
                if "settings" in smap.sections:
                    build.error(k, (section,), "settings are given twice (also at "
                                f"{smap.where('settings')})", section)
                    continue
                smap.sections["settings"] = Src(file, k, v)
                data["settings"] = build.value(v, ("settings",))
                continue
            smap.sections.setdefault(str(section), Src(file, k, v))
            if isinstance(v, ScalarNode) and v.tag == "tag:yaml.org,2002:null":
                continue
            if not isinstance(v, MappingNode):
                build.error(v, (section,), f"{section} is a mapping of id: {{...}}", scalar(v))
                continue
            for key, ek, ev in build.pairs(v, (section,)):
                eid = str(key)
                if (section, eid) in smap.entries:
                    build.error(ek, (section, eid), f"duplicate {SINGULAR[str(section)]} id "
                                f"{eid!r} (also declared at {smap.where(str(section), eid)})",
                                eid)
                    continue
                smap.entries[(str(section), eid)] = Src(file, ek, ev)
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
        result = validate(build, smap, prefix, schema_problems)
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
        node, key_node, _parts, _found = walk(src.value, loc[2:], missing=False)
        return id(node) in bad or (key_node is not None and id(key_node) in bad)
    return False
