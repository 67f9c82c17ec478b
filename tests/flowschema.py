"""Flow files as a JSON Schema validator sees them, and their schema errors.

Two readings of the same YAML text:

* the loader's (``callctl validate``: PyYAML, YAML 1.1, ``+1555`` kept a string, ``9:30`` the
  int 570, ``yes`` a boolean, dates as dates), made JSON-like (keys as strings, dates ISO);
* an editor's (yaml-language-server and check-jsonschema read YAML 1.2's core schema:
  ``+1555`` an int, ``9:30``, ``yes`` and ``2025-12-25`` strings).

A file the loader accepts must be valid against the schema in both readings.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from typing import Any

import jsonschema
import yaml

from controller.core.flows import yamlsafe
from controller.core.flows.editor_schema import flowset_json_schema
from controller.core.flows.problems import Problem


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {_key(k): _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def _key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def loader_view(text: str) -> Any:
    """The data ``callctl validate`` checks, JSON-like."""
    problems: list[Problem] = []
    root, ld = yamlsafe.compose(text, "<flows>", problems)
    if root is None:
        return None
    return _json(yamlsafe.Builder(ld, "<flows>", problems).value(root, ()))


class _Yaml12(yaml.SafeLoader):
    """PyYAML with YAML 1.2's core schema resolvers (as yaml-language-server reads files)."""


_Yaml12.yaml_implicit_resolvers = {}
for _tag, _rx, _first in (
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    ("float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
              r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", list("-+0123456789.")),
    ("merge", r"^(?:<<)$", ["<"]),
):
    _Yaml12.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_rx), _first)


def _int12(ld: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(ld.construct_scalar(node))
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


_Yaml12.add_constructor("tag:yaml.org,2002:int", _int12)


def editor_view(text: str) -> Any:
    """The data a YAML 1.2 editor validates."""
    return _json(yaml.load(text, Loader=_Yaml12))  # a SafeLoader


@cache
def validator() -> jsonschema.protocols.Validator:
    schema = flowset_json_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def errors_in(data: Any) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message[:300]}"
        for e in validator().iter_errors(data)
    ]


def schema_errors(text: str) -> list[str]:
    """Schema errors of ``text`` in the loader's and the editor's reading."""
    out = [f"loader view: {e}" for e in errors_in(loader_view(text))]
    try:
        editor = editor_view(text)
    except yaml.YAMLError:  # pure-Python PyYAML is stricter than libyaml (a tab in a flow
        return out  # mapping): a YAML reading question, not a schema one
    out += [f"editor view: {e}" for e in errors_in(editor)]
    return out
