"""Pydantic validation errors as :class:`~controller.core.flows.problems.Problem` s.

Each error's location is mapped back to the YAML node it came from (the source map); the
message is made plain ("unknown field 'x' (did you mean 'y'?)", "required field is
missing", "unknown node type ..."), without pydantic's prefixes.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from controller.core.flows.departments import Department
from controller.core.flows.directory import User
from controller.core.flows.problems import MISSING, Loc, Problem
from controller.core.flows.schema import Flow, FlowSet
from controller.core.flows.settings import Settings
from controller.core.flows.sourcemap import SourceMap
from controller.core.nodes import NODE_TYPES

__all__ = ["short", "validate"]

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


def short(name: Any) -> str:
    """``repr(name)``, cut to 60 characters (a hostile key can be a megabyte)."""
    text = repr(name)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(err: ErrorDetails) -> str:
    kind = err.get("type", "")
    loc = err.get("loc", ())
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        if not _FIELDS:
            _FIELDS.extend(_field_names())
        close = difflib.get_close_matches(name, _FIELDS, n=1) if len(name) <= 64 else []
        return f"unknown field {short(name)}" + (
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


def validate(build: Any, smap: SourceMap, prefix: Loc, problems: list[Problem]) -> Any:
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

